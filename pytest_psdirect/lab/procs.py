"""Processes of the lab: found by network namespace or user id, ended by PID (never by name).

``ip netns pids NS`` lists every process whose network namespace is ``NS``: the sshd listener,
its session processes and every command a client started there, background jobs included.

Example (as root)::

    >>> pids = netns_pids("psd1a2b-h1")                       # doctest: +SKIP
    >>> left = end_processes(pids)                           # doctest: +SKIP
    >>> left                                                  # doctest: +SKIP
    []
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable

LOCK_FILE = "/run/psdirect-lab.lock"


def netns_pids(netns: str) -> list[int]:
    """PIDs of every process in the named network namespace ([] when it does not exist)."""
    proc = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True,
                          check=False, timeout=30)
    return [int(word) for word in proc.stdout.split() if word.isdigit()] if proc.returncode == 0 else []


def uid_of(pid: int) -> int | None:
    """The real user id of ``pid``, or None when it has ended."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("Uid:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def uid_pids(uid: int) -> list[int]:
    """PIDs of every process on this machine whose real user id is ``uid``."""
    return [pid for pid in _all_pids() if uid_of(pid) == uid]


def cmdline_pids(marker: str) -> list[int]:
    """PIDs on this machine whose command line (NULs as spaces) holds ``marker``.

    >>> os.getpid() in cmdline_pids(cmdline(os.getpid()))
    True
    """
    return [pid for pid in _all_pids() if marker in cmdline(pid)]


def cmdline(pid: int) -> str:
    """The command line of ``pid`` with NULs as spaces ("" when it has ended)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:  # ended, or not ours to read
        return ""


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def end_processes(pids: Iterable[int], grace: float = 2.0, wait: float = 3.0) -> list[int]:
    """SIGTERM ``pids``, SIGKILL what is left after ``grace`` s; return those alive after ``wait`` s.

    Children of this process are reaped so they do not linger as zombies.
    """
    todo = [pid for pid in set(pids) if pid > 1 and pid != os.getpid()]
    for sig, bound in ((signal.SIGTERM, grace), (signal.SIGKILL, wait)):
        for pid in todo:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + bound
        while True:
            _reap(todo)
            todo = [pid for pid in todo if alive(pid)]
            if not todo or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        if not todo:
            return []
    return todo


def _reap(pids: Iterable[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]
