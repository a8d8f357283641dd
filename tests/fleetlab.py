"""Helpers for fleet tests: a lab of many sshd hosts, and watching their processes.

Agents (the command agent a session starts on its host: ``python3 -S -c ...``, the lab user's)
are counted across every host of the lab; each open session has exactly one.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

from pytest_psdirect.lab.procs import alive, cmdline


def fleet_subnet() -> str | None:
    """The fleet lab's /24: the one after PSDIRECT_LAB_SUBNET (whose /24 the 3-host lab uses),
    or a free one picked by the lab when that variable is unset."""
    base = os.environ.get("PSDIRECT_LAB_SUBNET")
    if not base:
        return None
    a, b, c = base.split(".")
    return f"{a}.{b}.{int(c) + 1}"


def user_processes(uid: int) -> list[int]:
    """Live processes of ``uid`` (``/proc/PID`` belongs to the process's user)."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{name}").st_uid == uid:
                    found.append(int(name))
    return found


def _parent(pid: int) -> int:
    with contextlib.suppress(OSError, IndexError, ValueError), open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[1])
    return 0


def agents(uid: int) -> list[int]:
    """PIDs of the command agents the lab user runs (one per open session); an agent's child
    that has not exec'd its command yet carries the same command line and is not counted."""
    found = [pid for pid in user_processes(uid) if cmdline(pid).startswith("python3 -S -c")]
    return [pid for pid in found if _parent(pid) not in found]


def slots_held(pid: int, folder: Path) -> int:
    """How many throttle slot files under ``folder`` process ``pid`` holds open."""
    held = 0
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(f"{folder}/all/"):
                    held += 1
    return held


class AgentSampler:
    """Counts agents every few ms in a thread; ``peak`` is the most seen at once."""

    def __init__(self, uid: int, interval: float = 0.005) -> None:
        self.uid, self.interval = uid, interval
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> AgentSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            found = agents(self.uid)  # a sweep of /proc takes ms: an agent that ended early in
            # it and one that started late would both count, so count those alive together
            self.peak = max(self.peak, sum(1 for pid in found if alive(pid)))
            self.samples += 1
            self._stop.wait(self.interval)


def wait_for(predicate: object, timeout: float, what: str) -> None:
    """Poll ``predicate()`` every 20 ms until true; AssertionError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g}s")
        time.sleep(0.02)
