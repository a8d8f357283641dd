"""Drives a :class:`~.shellproto.ShellProtocol` over any pair of byte pipes.

A transport hands over :class:`ShellPipes` (a local ``sh`` process, an SSH channel, later a
``podman exec -i`` process) and a ``kill_group`` callback; two reader threads feed a queue, so
stdout and stderr drain together and a chatty stderr can never stall stdout. A command that
overruns its timeout gets the executor's whole process group killed (the command with it) and
raises :class:`~pytest_psdirect.errors.CommandTimeout`; the session then starts a new executor.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import NoReturn, Protocol

from ..errors import CommandTimeout, SessionBroken
from .shellproto import STDERR, STDOUT, Completed, ShellProtocol

log = logging.getLogger(__name__)


class ShellPipes(Protocol):
    """Blocking byte pipes of a running ``/bin/sh``. ``read_*`` return ``b""`` at EOF."""

    def write(self, data: bytes) -> None: ...
    def read_stdout(self) -> bytes: ...
    def read_stderr(self) -> bytes: ...
    def close(self) -> None: ...


class ShellExecutor:
    """One long-lived shell; runs commands one at a time with exact rc/stdout/stderr framing."""

    def __init__(self, pipes: ShellPipes, *, label: str,
                 kill_group: Callable[[int], None]) -> None:
        self._pipes = pipes
        self._label = label
        self._kill_group = kill_group
        self._proto = ShellProtocol()
        self._events: queue.Queue[tuple[int, bytes]] = queue.Queue()
        self._eof: set[int] = set()
        self._lock = threading.Lock()
        self.pid = 0
        self.alive = True
        for stream, reader in ((STDOUT, pipes.read_stdout), (STDERR, pipes.read_stderr)):
            threading.Thread(target=self._pump, args=(stream, reader), daemon=True,
                             name=f"psdirect-{label}-{stream}").start()

    def _pump(self, stream: int, reader: Callable[[], bytes]) -> None:
        while True:
            try:
                data = reader()
            except Exception:  # a closed pipe or channel ends the stream like EOF
                data = b""
            self._events.put((stream, data))
            if not data:
                return

    def start(self, timeout: float) -> int:
        """Check that the shell answers; return its PID (its process group id)."""
        _, script = self._proto.handshake()
        self.pid = self._exchange(script, timeout, "<executor handshake>").rc
        log.debug("executor on %s ready, pid %s", self._label, self.pid)
        return self.pid

    def run(self, cmd: str, *, timeout: float, isolated: bool = True,
            env: Mapping[str, str] | None = None, cwd: str | None = None) -> Completed:
        """Run ``cmd`` and wait for its framed result at most ``timeout`` seconds."""
        with self._lock:
            if not self.alive:
                raise SessionBroken("executor is closed", target=self._label)
            _, script = self._proto.command(cmd, isolated=isolated, env=env, cwd=cwd)
            return self._exchange(script, timeout, cmd)

    def _exchange(self, script: bytes, timeout: float, cmd: str) -> Completed:
        try:
            self._pipes.write(script)
        except OSError as exc:
            self._die()
            raise SessionBroken(f"cannot write to the remote shell: {exc}", target=self._label,
                                hint="the connection dropped; the session is reopened once") from None
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                stream, data = self._events.get(timeout=max(remaining, 0.0))
            except queue.Empty:
                self._on_timeout(cmd, timeout)
            if not data:
                self._eof.add(stream)
                if len(self._eof) == 2:
                    self._die()
                    raise SessionBroken(
                        "the remote shell exited while running a command", target=self._label,
                        hint="a command ended the shell (exit/exec in a stateful shell) or the "
                             "connection dropped")
                continue
            for done in self._proto.feed(stream, data):
                return done

    def _on_timeout(self, cmd: str, timeout: float) -> NoReturn:
        out, err = self._proto.partial()
        self._die(kill=True)
        raise CommandTimeout(
            f"command timed out after {timeout:g}s and was killed", target=self._label,
            command=cmd, timeout=timeout, stdout=out, stderr=err,
            hint="raise timeout= (or --psdirect-command-timeout); the next command opens a new shell")

    def _die(self, kill: bool = False) -> None:
        self.alive = False
        if kill and self.pid:
            try:
                self._kill_group(self.pid)
            except Exception as exc:  # best effort: the pipes are closed below anyway
                log.warning("could not kill process group %s on %s: %s", self.pid, self._label, exc)
        self._pipes.close()

    def close(self) -> None:
        """Stop the shell: end its input and close the pipes."""
        if self.alive:
            self._die()
