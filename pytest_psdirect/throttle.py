"""A cross-process cap on open sessions: slot files locked with ``flock``, no server.

Every process of one run (the xdist controller's workers on one machine, or a plain pytest
process) points a :class:`Throttle` at the same directory. A session holds one slot of the run
(``all/0`` .. ``all/N-1``) and, when a per-endpoint cap is set, one slot of its endpoint
(``ep-<hash>/0`` ..). A slot is held by an exclusive ``flock`` on an open descriptor, so the
kernel releases it when the descriptor closes: at :meth:`Lease.release`, and also when the
process dies in any way (``kill -9`` leaks nothing). Descriptors are close-on-exec, so commands
started by the session never inherit a slot.

Locks live in one machine's kernel: the caps hold among the processes of one machine.

Example::

    >>> import tempfile
    >>> throttle = Throttle(Path(tempfile.mkdtemp()), limit=1)
    >>> lease = throttle.try_acquire("ssh:u@a:22")
    >>> throttle.try_acquire("ssh:u@b:22") is None      # the one slot is taken
    True
    >>> lease.release(); throttle.try_acquire("ssh:u@b:22") is not None
    True
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .targets import Target

DEFAULT_LIMIT = 32  # Invoke-Command's ThrottleLimit


class ThrottleTimeout(TimeoutError):
    """No slot became free within the wait's bound."""


def endpoint_key(target: Target, username: str | None = None) -> str:
    """What sessions share when they share an endpoint (the unit of ``--max-sessions-per-endpoint``).

    SSH (and PowerShell over SSH): host, port and user; WinRM: the account at the host; Hyper-V
    VMs and Windows containers: their Hyper-V host (every session is one on that host);
    local processes: this machine.

    >>> from pytest_psdirect.targets import parse_target
    >>> endpoint_key(parse_target("ssh://admin@web01"))
    'ssh:admin@web01:22'
    >>> endpoint_key(parse_target("winrm://srv01"), "CORP\\\\ops")
    'winrm:CORP\\\\ops@srv01'
    >>> endpoint_key(parse_target("vm://web01?host=hv01")), endpoint_key(parse_target("vm://web02"))
    ('hyperv:hv01', 'hyperv:local')
    """
    user = target.user or username or ""
    if target.scheme in ("ssh", "pwsh+ssh"):
        return f"ssh:{user}@{target.host}:{target.port or 22}"
    if target.scheme == "winrm":
        return f"winrm:{user}@{target.host}"
    if target.scheme in ("vm", "vmid", "container"):
        return f"hyperv:{target.option('host') or 'local'}"
    if target.scheme in ("local", "pwsh"):
        return "local"
    return f"{target.scheme}:{user}@{target.host}:{target.port or ''}"


class Lease:
    """The slots one session holds; :meth:`release` (idempotent) frees them."""

    def __init__(self, fds: list[int]) -> None:
        self._fds = fds
        self._lock = threading.Lock()

    @property
    def held(self) -> bool:
        return bool(self._fds)

    def release(self) -> None:
        with self._lock:
            fds, self._fds = self._fds, []
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)  # closing the descriptor drops its flock


class Throttle:
    """``limit`` slots for the run, ``per_endpoint`` slots for each endpoint (None: no cap)."""

    def __init__(self, directory: Path, limit: int = DEFAULT_LIMIT,
                 per_endpoint: int | None = None, poll: float = 0.01) -> None:
        if limit < 1 or (per_endpoint is not None and per_endpoint < 1):
            raise ValueError("throttle limits must be at least 1")
        self.directory = directory
        self.limit = limit
        self.per_endpoint = per_endpoint
        self.poll = poll

    def _folder(self, name: str) -> Path:
        """``directory/name``, made on first use; a folder of another user is refused (its
        owner could hold every slot, or none)."""
        path = self.directory / name
        self.directory.mkdir(mode=0o700, exist_ok=True)  # the run's folder: this user's only
        path.mkdir(mode=0o700, exist_ok=True)
        for folder in (self.directory, path):
            if folder.stat().st_uid != os.getuid():
                raise PermissionError(f"{folder} belongs to another user: refusing its locks")
        return path

    def _take(self, folder: str, slots: int) -> int | None:
        """An fd holding one free slot of ``folder``, or None when all are taken."""
        path = self._folder(folder)
        start = (os.getpid() + threading.get_ident()) % slots  # spread the first tries
        for n in range(slots):
            fd = os.open(path / str((start + n) % slots), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                         0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return fd
        return None

    def try_acquire(self, endpoint: str) -> Lease | None:
        """Both slots (the endpoint's first) at once, or None without holding anything."""
        fds: list[int] = []
        if self.per_endpoint is not None:
            name = "ep-" + hashlib.sha256(endpoint.encode()).hexdigest()[:20]
            fd = self._take(name, self.per_endpoint)
            if fd is None:
                return None
            fds.append(fd)
        fd = self._take("all", self.limit)
        if fd is None:
            Lease(fds).release()
            return None
        return Lease([*fds, fd])

    def acquire(self, endpoint: str, timeout: float,
                make_room: Callable[[], bool] = lambda: False) -> Lease:
        """Wait (at most ``timeout`` s) for both slots; never holds one while waiting.

        ``make_room()`` is called when none is free: it may close an idle session of this
        process and return True to retry at once.
        """
        deadline = time.monotonic() + timeout
        while True:
            lease = self.try_acquire(endpoint)
            if lease is not None:
                return lease
            if make_room():
                continue
            if time.monotonic() >= deadline:
                raise ThrottleTimeout(f"no free session slot within {timeout:g}s")
            time.sleep(self.poll)

    def in_use(self) -> int:
        """How many run slots are held right now (by any process; for tests and progress)."""
        taken = 0
        for n in range(self.limit):
            path = self.directory / "all" / str(n)
            if not path.exists():
                continue
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                taken += 1
            finally:
                os.close(fd)
        return taken
