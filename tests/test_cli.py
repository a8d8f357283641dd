"""The psdirect command: lab up/down as a user would run them, and one-off commands."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import LAB_USER, require_lab
from pytest_psdirect.cli import main

#: the installed console script of this interpreter's environment (CI does not put it on PATH)
PSDIRECT = str(Path(sys.executable).with_name("psdirect"))


def test_run_local(capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "local://", "--", "echo", "hi"]) == 0
    assert capfd.readouterr().out == "hi\n"


def test_run_bad_target_is_a_clear_error(capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "ftp://x", "true"]) == 255  # our own errors exit 255, as ssh's do
    assert "unknown scheme 'ftp'" in capfd.readouterr().err


def test_lab_up_then_baseline_then_down(tmp_path: Path) -> None:
    """The README's lab walk-through: a free subnet is picked (none is hard-coded)."""
    require_lab()
    workdir, user = tmp_path / "clilab", f"{LAB_USER}cli"
    up = subprocess.run([PSDIRECT, "lab", "up", "--dir", str(workdir), "--hosts", "1",
                         "--user", user], capture_output=True, text=True, timeout=60)
    try:
        assert up.returncode == 0, up.stderr
        assert "hardened" in up.stdout
        inventory = workdir / "inventory.toml"
        suite = Path(__file__).parent.parent / "example_suites" / "linux_baseline"
        run = subprocess.run([sys.executable, "-m", "pytest", str(suite), "--inventory", str(inventory),
                              "-p", "no:cacheprovider", "-q"], capture_output=True, text=True,
                             timeout=120)
        assert run.returncode == 0, run.stdout[-2000:]
    finally:
        down = subprocess.run([PSDIRECT, "lab", "down", "--dir", str(workdir)],
                              capture_output=True, text=True, timeout=60)
    assert down.returncode == 0 and "lab removed" in down.stdout
    assert not workdir.exists()
    assert subprocess.run(["id", user], capture_output=True).returncode != 0  # user removed
