"""The transport contract every scheme implements, and the shell-executor base for POSIX targets.

A transport moves commands and files for one :class:`~pytest_psdirect.targets.Target`. Later
transports (WinRM/PSRP, OutOfProc, PowerShell Direct, QEMU guest agent, containers) subclass
:class:`Transport` directly or :class:`ShellTransport` when they can keep a ``/bin/sh`` open, and
register their scheme; fixtures and user tests do not change.
"""

from __future__ import annotations

import abc
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from ..credentials.secret import Credential
from ..errors import PSDirectError, UnsupportedOperation
from ..results import CommandResult
from ..settings import Settings
from ..targets import Target
from .executor import ShellExecutor, ShellPipes
from .shellproto import Completed, compose

log = logging.getLogger(__name__)


class Transport(abc.ABC):
    """Commands and files for one target. Open once, reuse for every test, close at the end."""

    #: URL scheme this transport serves.
    scheme: ClassVar[str]
    #: True when the target cannot be reached without a credential (PowerShell Direct).
    credential_required: ClassVar[bool] = False

    def __init__(self, target: Target, credential: Credential | None, settings: Settings) -> None:
        self.target = target
        self.credential = credential
        self.settings = settings

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.target.url}>"

    @abc.abstractmethod
    def open(self) -> None:
        """Connect; raise :class:`~pytest_psdirect.errors.ConnectFailed` (or a subclass)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release everything; safe to call twice."""

    @property
    @abc.abstractmethod
    def alive(self) -> bool:
        """False once the connection is known to be gone."""

    @abc.abstractmethod
    def run(self, cmd: str, *, timeout: float, env: Mapping[str, str] | None = None,
            cwd: str | None = None) -> CommandResult:
        """Run ``cmd`` isolated from earlier commands; raise CommandTimeout past ``timeout``."""

    @abc.abstractmethod
    def put(self, local: str, remote: str) -> None:
        """Copy local file ``local`` to ``remote`` on the target."""

    @abc.abstractmethod
    def get(self, remote: str, local: str) -> None:
        """Copy ``remote`` on the target to the local file ``local``."""

    def open_shell(self) -> StatefulShell:
        """Start a shell whose state (cwd, variables) persists across its commands."""
        raise UnsupportedOperation(f"{self.scheme} targets have no stateful shell",
                                   target=self.target.url)

    def run_ps(self, script: str, *args: Any, **params: Any) -> Any:
        """Run PowerShell (transports with a PowerShell engine override this)."""
        raise UnsupportedOperation(
            f"{self.scheme} targets run no PowerShell yet", target=self.target.url,
            hint="use target.run() for shell commands; run_ps needs a winrm://, vm:// or "
                 "pwsh+ssh:// target")


class StatefulShell:
    """A dedicated shell whose ``cd``/``export``/variables persist between ``run`` calls."""

    def __init__(self, executor: ShellExecutor, target: Target, timeout: float) -> None:
        self._executor = executor
        self._target = target
        self._timeout = timeout

    def run(self, cmd: str, *, timeout: float | None = None) -> CommandResult:
        """Run ``cmd`` in this shell's state."""
        wait = timeout if timeout is not None else self._timeout
        start = time.perf_counter()
        done = self._executor.run(cmd, timeout=wait, isolated=False)
        return _result(done, cmd, self._target, time.perf_counter() - start)

    def close(self) -> None:
        """End the shell."""
        self._executor.close()


def _result(done: Completed, cmd: str, target: Target, duration: float) -> CommandResult:
    return CommandResult(rc=done.rc, stdout_bytes=done.stdout, stderr_bytes=done.stderr,
                         duration=duration, command=cmd, target=target.url)


class ShellTransport(Transport):
    """Keeps one ``/bin/sh`` executor per session; falls back to one process per command.

    Subclasses give :meth:`_spawn_shell` (pipes of a new ``/bin/sh`` plus a function that kills
    its process group) and :meth:`_exec_once` (the fallback: one fresh process per command).
    """

    _executor: ShellExecutor | None = None
    _fallback = False

    @abc.abstractmethod
    def _spawn_shell(self) -> tuple[ShellPipes, Callable[[int], None]]:
        """Start ``/bin/sh`` reading commands from stdin."""

    @abc.abstractmethod
    def _exec_once(self, cmd: str, timeout: float) -> Completed:
        """Run one command in a process of its own (no executor)."""

    def _new_executor(self) -> ShellExecutor:
        pipes, kill = self._spawn_shell()
        executor = ShellExecutor(pipes, label=self.target.url, kill_group=kill)
        try:
            executor.start(timeout=self.settings.connect_timeout)
        except BaseException:
            executor.close()
            raise
        return executor

    def _ensure_executor(self) -> ShellExecutor | None:
        if self._fallback:
            return None
        if self._executor is None or not self._executor.alive:
            try:
                self._executor = self._new_executor()
            except (PSDirectError, OSError) as exc:  # CommandTimeout included
                if not self.alive:
                    raise
                log.warning("%s: no long-lived shell (%s); running one process per command",
                            self.target, exc)
                self._fallback = True
                return None
        return self._executor

    def run(self, cmd: str, *, timeout: float, env: Mapping[str, str] | None = None,
            cwd: str | None = None) -> CommandResult:
        start = time.perf_counter()
        executor = self._ensure_executor()
        if executor is None:
            done = self._exec_once(compose(cmd, env=env, cwd=cwd), timeout)
        else:
            done = executor.run(cmd, timeout=timeout, env=env, cwd=cwd)
        return _result(done, cmd, self.target, time.perf_counter() - start)

    def open_shell(self) -> StatefulShell:
        return StatefulShell(self._new_executor(), self.target, self.settings.command_timeout)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.close()
            self._executor = None
