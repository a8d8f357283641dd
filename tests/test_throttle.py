"""The cross-process throttle with real processes: slots are shared, capped and freed by kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_psdirect.throttle import Throttle, ThrottleTimeout

HOLDER = """
import sys, time
from pathlib import Path
from pytest_psdirect.throttle import Throttle
t = Throttle(Path(sys.argv[1]), limit=int(sys.argv[2]))
lease = t.acquire("ssh:u@h:22", timeout=10)
print("held", flush=True)
time.sleep(60)
"""


def holder(folder: Path, limit: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), str(limit)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def test_slots_are_shared_by_processes_and_freed_by_kill_9(tmp_path: Path) -> None:
    a, b = holder(tmp_path, 2), holder(tmp_path, 2)
    try:
        throttle = Throttle(tmp_path, limit=2)
        assert throttle.in_use() == 2
        assert throttle.try_acquire("ssh:u@other:22") is None
        start = time.monotonic()
        with pytest.raises(ThrottleTimeout, match=r"no free session slot within 0\.2s"):
            throttle.acquire("ssh:u@other:22", timeout=0.2)
        assert time.monotonic() - start < 1
        a.send_signal(signal.SIGKILL)
        a.wait()
        lease = throttle.acquire("ssh:u@other:22", timeout=5)  # the kernel dropped its lock
        assert throttle.in_use() == 2
        lease.release()
        lease.release()  # idempotent
        assert throttle.in_use() == 1
    finally:
        for proc in (a, b):
            proc.kill()
            proc.wait()


def test_threads_of_one_process_count_too_and_endpoint_cap(tmp_path: Path) -> None:
    throttle = Throttle(tmp_path, limit=3, per_endpoint=1)
    first = throttle.try_acquire("winrm:ops@srv01")
    assert first is not None
    assert throttle.try_acquire("winrm:ops@srv01") is None  # same endpoint: capped at 1
    other = throttle.try_acquire("winrm:ops@srv02")
    assert other is not None and throttle.in_use() == 2
    freed = []

    def make_room() -> bool:  # the waiting caller closes an idle session of its own
        if first.held:
            first.release()
            freed.append(True)
            return True
        return False

    third = throttle.acquire("winrm:ops@srv01", timeout=1, make_room=make_room)
    assert freed == [True] and third.held


def test_a_folder_of_another_user_is_refused(tmp_path: Path) -> None:
    import os

    if os.geteuid() != 0:
        pytest.skip("needs root to make a folder owned by another user")
    folder = tmp_path / "run"
    (folder / "all").mkdir(parents=True)
    os.chown(folder, 65534, 65534)
    with pytest.raises(PermissionError, match="belongs to another user"):
        Throttle(folder, limit=1).try_acquire("local")


@pytest.mark.parametrize(("args", "message"), [
    (["--throttle-limit", "-1"], "*--throttle-limit '-1': must be at least 0*"),
    (["--throttle-limit", "many"], "*--throttle-limit 'many': not a whole number*"),
    (["--max-sessions-per-endpoint", "0"], "*--max-sessions-per-endpoint '0': must be at least 1*"),
])
def test_bad_limits_are_usage_errors(pytester: pytest.Pytester, args: list[str],
                                     message: str) -> None:
    pytester.makepyfile("def test_x(target): pass")
    result = pytester.runpytest("--hosts", "local://", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_ini_limits_and_a_local_run_leaves_no_lock_folder(pytester: pytest.Pytester) -> None:
    """0 means the default; the run's lock folder is gone afterwards; local:// takes a slot."""
    pytester.makeini("[pytest]\npsdirect_throttle_limit = 0\n"
                     "psdirect_max_sessions_per_endpoint = 1\n")
    pytester.makeconftest("""
        import tempfile
        from pathlib import Path
        from pytest_psdirect.plugin.throttle import THROTTLE
        def pytest_sessionfinish(session):
            t = session.config.stash[THROTTLE]
            Path("seen").write_text(f"{t.limit} {t.per_endpoint} {t.directory}")
    """)
    pytester.makepyfile("""
        from pytest_psdirect.plugin.throttle import THROTTLE
        def test_x(target, pytestconfig):
            assert pytestconfig.stash[THROTTLE].in_use() == 1
    """)
    result = pytester.runpytest("--hosts", "local://")
    result.assert_outcomes(passed=1)
    limit, per_endpoint, folder = (pytester.path / "seen").read_text().split()
    assert (limit, per_endpoint) == ("32", "1")
    assert not Path(folder).exists()


def test_doctests_of_the_fleet_modules() -> None:
    import doctest

    from pytest_psdirect import throttle
    from pytest_psdirect.plugin import fleet_report
    from pytest_psdirect.plugin import throttle as throttle_plugin

    for module in (throttle, throttle_plugin, fleet_report):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__


HOLD_SUITE = """
import os, time
def test_hold(target):
    target.run("true")                        # a session, so a slot in the run's lock folder
    open(os.environ["HOLD_FILE"], "w").write("holding")
    time.sleep(120)
"""


def test_a_killed_runs_lock_folder_is_removed_by_the_next_run_not_before(
        pytester: pytest.Pytester) -> None:
    """``kill -9`` of a whole pytest run leaves its lock folder; another run removes it only once
    its maker is dead (the owner lock is free), never while that run lives."""
    pytester.makepyfile(test_hold=HOLD_SUITE, test_ok="def test_ok():\n    pass\n")
    tmp, hold = pytester.path / "tmp", pytester.path / "holding"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "HOLD_FILE": str(hold)}

    def other_run() -> None:
        subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                        "test_ok.py"], cwd=pytester.path, env=env, check=True, timeout=120,
                       stdout=subprocess.DEVNULL)

    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                             "--hosts", "local://", "test_hold.py"], cwd=pytester.path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not hold.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the run never held"
            time.sleep(0.05)
        left = sorted(p.name for p in tmp.glob("psdirect-run-*"))
        assert len(left) == 2 and left[1] == f"{left[0]}.owner", left
        other_run()
        assert sorted(p.name for p in tmp.glob("psdirect-run-*")) == left  # its maker lives
        proc.kill()
        proc.wait(30)
        assert sorted(p.name for p in tmp.glob("psdirect-run-*")) == left  # nobody cleaned up
        other_run()
        assert list(tmp.glob("psdirect-run-*")) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
