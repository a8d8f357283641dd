"""A new user's install: a fresh venv with the newest pytest and pytest-testinfra, plus this project.

pytest loads entry points in file-system order, so testinfra's plugin may register before or after
ours; each order is forced here with ``-p`` under ``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1`` and must give
the same ``--help`` options and the same outcomes as plain autoloading.
"""

from __future__ import annotations

import os
import re
import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
SUITE = {
    "test_hosts.py": """
        def test_file(host):
            assert host.file("/etc/passwd").exists
        def test_run(host, target):
            assert host.run("echo %s", "x y").stdout == "x y\\n"
            assert host.backend.get_connection_type() == target.spec.scheme
        def test_fails(host):
            assert host.run("exit 3").rc == 0
    """,
    "test_module_hosts.py": """
        testinfra_hosts = ["local://"]
        def test_local(host):
            assert host.backend.get_hostname() == "local"
    """,
}


@pytest.fixture(scope="session")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One venv per test session: newest pytest, pytest-testinfra and pytest-xdist, then us."""
    path = tmp_path_factory.mktemp("venv") / "v"
    venv.create(path, with_pip=True)
    python = path / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pytest",
                    "pytest-testinfra", "pytest-xdist", str(ROOT)], check=True,
                   stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    return python


def _pytest(python: Path, cwd: Path, *args: str, autoload: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHON"))}
    if not autoload:
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    return subprocess.run([str(python), "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=cwd,
                          env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=120)


def _options(help_text: str) -> list[str]:
    return sorted(re.findall(r"^\s{2}(--[a-z][\w-]*)", help_text, re.MULTILINE))


ORDERS = {
    "autoload": ((), True),
    "testinfra first": (("-p", "pytest11.testinfra", "-p", "psdirect", "-p", "xdist"), False),
    "psdirect first": (("-p", "psdirect", "-p", "pytest11.testinfra", "-p", "xdist"), False),
    "module name first": (("-p", "testinfra.plugin", "-p", "psdirect", "-p", "xdist"), False),
    "module name last": (("-p", "psdirect", "-p", "xdist", "-p", "testinfra.plugin"), False),
}


def test_any_load_order_gives_the_same_options_and_outcomes(fresh_venv: Path, tmp_path: Path) -> None:
    for name, body in SUITE.items():
        (tmp_path / name).write_text("\n".join(line[8:] for line in body.splitlines()))
    helps, outcomes = {}, {}
    for order, (plugins, autoload) in ORDERS.items():
        help_run = _pytest(fresh_venv, tmp_path, *plugins, "--help", autoload=autoload)
        assert help_run.returncode == 0, (order, help_run.stderr)
        helps[order] = _options(help_run.stdout)
        run = _pytest(fresh_venv, tmp_path, *plugins, "--hosts", "local://", "-rA",
                      "test_hosts.py", autoload=autoload)
        module_run = _pytest(fresh_venv, tmp_path, *plugins, "-rA", "test_module_hosts.py",
                             autoload=autoload)
        outcomes[order] = (run.returncode, module_run.returncode, sorted(
            line for line in run.stdout.splitlines() + module_run.stdout.splitlines()
            if line.startswith(("PASSED", "FAILED", "ERROR"))))
    first = next(iter(ORDERS))
    for order in ORDERS:
        assert helps[order] == helps[first], order
        assert outcomes[order] == outcomes[first], order
    for option in ("--hosts", "--sudo", "--sudo-user", "--ssh-identity-file", "--ssh-config",
                   "--connection", "--ansible-inventory", "--nagios", "--force-ansible",
                   "--ssh-extra-args", "--ssh-key", "--inventory", "--dist"):
        assert helps[first].count(option) == 1, option
    assert outcomes[first] == (1, 0, [
        "FAILED test_hosts.py::test_fails[local://] - AssertionError: assert 3 == 0",
        "PASSED test_hosts.py::test_file[local://]",
        "PASSED test_hosts.py::test_run[local://]",
        "PASSED test_module_hosts.py::test_local[local://]",
    ])


def test_no_psdirect_gives_testinfra_its_plugin_back(fresh_venv: Path, tmp_path: Path) -> None:
    (tmp_path / "test_t.py").write_text("def test_x(host):\n    assert host.backend.NAME == 'local'\n")
    help_run = _pytest(fresh_venv, tmp_path, "-p", "no:psdirect", "--help")
    assert "Hosts list (comma separated)" in help_run.stdout
    assert "--ssh-key" not in help_run.stdout
    run = _pytest(fresh_venv, tmp_path, "-p", "no:psdirect", "--hosts", "local://", "-v")
    assert run.returncode == 0, run.stdout
    assert "test_x[local] PASSED" in run.stdout


def test_a_plain_suite_is_unaffected(fresh_venv: Path, tmp_path: Path) -> None:
    (tmp_path / "test_p.py").write_text("def test_x():\n    pass\n")
    run = _pytest(fresh_venv, tmp_path, "-q")
    assert run.returncode == 0 and "1 passed" in run.stdout, run.stdout + run.stderr
