"""The plugin end to end with real podman containers: ``--container-id``, ``--hosts
container://``, the ``container`` fixture/marker (removed on failure and after a killed run) and
``psdirect lab up --containers N`` / ``lab down``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from ctr_support import Lab

from pytest_psdirect import cli
from pytest_psdirect.lab import containers as lab

SUITE = """
    import pytest

    def test_runs(target, host):
        assert target.url.startswith("container://")
        assert target.run("cat /etc/passwd").rc == 0
        assert host.file("/etc/passwd").user == "root"
"""


def test_container_id_and_hosts_options(pytester: pytest.Pytester, ctr_lab: Lab) -> None:
    pytester.makepyfile(SUITE)
    result = pytester.runpytest("--container-id", f"{ctr_lab.debian},{ctr_lab.busybox}",
                                "--container-runtime", "podman", "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([f"*test_runs?container://{ctr_lab.debian}?runtime=podman* PASSED*"])
    result = pytester.runpytest("--hosts", f"container://{ctr_lab.debian}", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*test_runs?container://{ctr_lab.debian}? PASSED*"])


@pytest.mark.parametrize(("args", "message"), [
    (["--container-id", "c1", "--run-as-administrator"], "*run_as_administrator*Windows containers*"),
    (["--hosts", "container://c1?runtime=lxc"], "*?runtime='lxc' is not one of podman, docker*"),
    (["--hosts", "container://c1?runtime=docker&host=hv01"], "*exclude each other*"),
])
def test_bad_container_options_are_usage_errors(pytester: pytest.Pytester, args: list[str],
                                                message: str) -> None:
    pytester.makepyfile(SUITE)
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_unknown_container_errors_the_test_at_once(pytester: pytest.Pytester,
                                                   ctr_images: dict[str, str]) -> None:
    pytester.makepyfile(SUITE)
    result = pytester.runpytest("--container-id", "no-such-ctr", "--container-runtime", "podman")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*ContainerNotFound*no such container no-such-ctr on podman*"
                                 "podman ps -a*"])


def test_container_fixture_is_removed_even_when_tests_fail(pytester: pytest.Pytester,
                                                          ctr_images: dict[str, str]) -> None:
    record = pytester.path / "seen.txt"
    pytester.makepyfile(f"""
        import pytest
        pytestmark = pytest.mark.container(image={ctr_images["busybox"]!r}, runtime="podman")

        def test_uses_it(container):
            with open({str(record)!r}, "a") as fh:
                fh.write(container.url + "\\n")
            assert container.run("echo up").stdout == "up\\n"
            assert container.testinfra.file("/bin/busybox").exists

        def test_fails(container):
            with open({str(record)!r}, "a") as fh:
                fh.write(container.url + "\\n")
            assert container.run("false").rc == 0
    """)
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    urls = record.read_text().split()
    assert len(urls) == 2 and urls[0] == urls[1]  # one container for the module
    name = urls[0].removeprefix("container://").partition("?")[0]
    assert not lab.exists("podman", name)


def test_container_fixture_without_an_image_says_how(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(container):\n    pass\n")
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*needs an image*pytest.mark.container(image=*"])


def test_a_killed_run_is_reaped_by_the_next(pytester: pytest.Pytester,
                                            ctr_images: dict[str, str]) -> None:
    record = pytester.path / "started.txt"
    image = ctr_images["busybox"]
    pytester.makepyfile(test_killed=f"""
        import os, signal

        def test_dies(make_container):
            session = make_container({image!r}, runtime="podman")
            open({str(record)!r}, "w").write(session.url)
            os.kill(os.getpid(), signal.SIGKILL)  # no teardown, no atexit: a crashed worker
    """)
    pytester.runpytest("test_killed.py")
    name = record.read_text().removeprefix("container://").partition("?")[0]
    assert lab.exists("podman", name)  # left behind, labelled with its dead owner
    pytester.makepyfile(test_next=f"""
        def test_next(make_container):
            assert make_container({image!r}, runtime="podman").run("true").rc == 0
    """)
    pytester.runpytest("test_next.py").assert_outcomes(passed=1)
    assert not lab.exists("podman", name)


def test_lab_up_containers_then_down(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     pytester: pytest.Pytester, ctr_images: dict[str, str]) -> None:
    workdir = tmp_path / "lab"
    assert cli.main(["lab", "up", "--hosts", "0", "--containers", "2", "--dir", str(workdir)]) == 0
    out = capsys.readouterr().out
    hosts = out.split("--hosts '")[1].split("'")[0]
    names = json.loads((workdir / lab.STATE_FILE).read_text())["names"]
    try:
        assert hosts == ",".join(f"container://{n}?runtime=podman" for n in names)
        pytester.makepyfile(SUITE)
        pytester.runpytest("--hosts", hosts).assert_outcomes(passed=2)
    finally:
        assert cli.main(["lab", "down", "--dir", str(workdir)]) == 0
    assert [n for n in names if lab.exists("podman", n)] == []
    assert not (workdir / lab.STATE_FILE).exists()
    ps = subprocess.run(["podman", "ps", "-a", "--format", "{{.Names}}"], capture_output=True,
                        text=True, check=True).stdout.split()
    assert not set(names) & set(ps)


def test_container_fixture_under_xdist(pytester: pytest.Pytester,
                                       ctr_images: dict[str, str]) -> None:
    record = pytester.path / "seen.txt"
    module = f"""
        import pytest
        pytestmark = pytest.mark.container(image={ctr_images["busybox"]!r})

        @pytest.mark.parametrize("i", range(3))
        def test_it(container, i):
            with open({str(record)!r}, "a") as fh:
                fh.write(container.url + "\\n")
            assert container.run("hostname").rc == 0
    """
    pytester.makepyfile(test_a=module, test_b=module)
    pytester.runpytest("-n", "2", "--container-runtime", "podman").assert_outcomes(passed=6)
    names = {u.removeprefix("container://").partition("?")[0] for u in record.read_text().split()}
    assert 2 <= len(names) <= 4  # one per module and worker that ran some of its tests
    assert [n for n in names if lab.exists("podman", n)] == []


def test_ctrl_c_removes_the_container(pytester: pytest.Pytester,
                                      ctr_images: dict[str, str]) -> None:
    record = pytester.path / "seen.txt"
    pytester.makepyfile(f"""
        import os, signal, pytest
        pytestmark = pytest.mark.container(image={ctr_images["busybox"]!r}, runtime="podman")

        def test_interrupted(container):
            open({str(record)!r}, "w").write(container.url)
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C
    """)
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    name = record.read_text().removeprefix("container://").partition("?")[0]
    assert not lab.exists("podman", name)
