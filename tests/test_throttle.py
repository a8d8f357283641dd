"""The cross-process throttle with real processes: slots are shared, capped and freed by kill -9."""

from __future__ import annotations

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
