"""The transport contract every scheme implements, and the shell-executor base for POSIX targets.

A transport moves commands and files for one :class:`~pytest_psdirect.targets.Target`. Later
transports (WinRM/PSRP, OutOfProc, PowerShell Direct, QEMU guest agent, containers) subclass
:class:`Transport` directly or :class:`ShellTransport` when they can keep a ``/bin/sh`` open, and
register their scheme; fixtures and user tests do not change.

Background jobs (``target.start``/``start_ps``) need nothing more from a new transport: the
default :meth:`Transport.start` runs the job on a second connection (:meth:`Transport.sibling`,
i.e. ``type(self)(target, credential, settings)``, then ``open``/``run``/``close`` in a worker
thread) and cancels it by closing that connection, so ``close()`` must end what the connection
started (the contract anyway). Override ``sibling`` if the constructor differs, and ``start``
for concurrency on the session's own connection (return a :class:`~pytest_psdirect.jobs.Job`
of a blocking ``work`` and a ``cancel`` that makes it end; see :class:`ShellTransport`).
"""

from __future__ import annotations

import abc
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import ClassVar

from ..credentials.secret import Credential
from ..errors import CommandTimeout, PSDirectError, SessionBroken, UnsupportedOperation
from ..jobs import Job, on_own_connection
from ..powershell.command import Invocation
from ..powershell.result import PSResult
from ..results import CommandResult
from ..settings import Settings
from ..targets import Target
from .agentproto import RunSpec, agent_source, run_spec
from .executor import ShellExecutor, ShellPipes
from .runner import AgentGone, AgentRunner, AgentUnavailable, OutputCallback
from .shellproto import Completed, compose

log = logging.getLogger(__name__)


class Transport(abc.ABC):
    """Commands and files for one target. Open once, reuse for every test, close at the end."""

    #: URL scheme this transport serves.
    scheme: ClassVar[str]
    #: True when the target cannot be reached without a credential (PowerShell Direct).
    credential_required: ClassVar[bool] = False

    @classmethod
    def credential_required_for(cls, target: Target) -> bool:
        """Whether ``target`` needs a credential (default :attr:`credential_required`);
        transports whose URL options decide it (``winrm://?auth=kerberos``) override this."""
        return cls.credential_required

    @classmethod
    def select(cls, target: Target) -> type[Transport]:
        """The class that serves ``target``: this one, unless a scheme serves two kinds of
        target (``container://``: Linux containers, or Windows ones when ``?host=`` is given)."""
        return cls

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
            cwd: str | None = None, stream: OutputCallback | None = None) -> CommandResult:
        """Run ``cmd`` isolated from earlier commands; raise CommandTimeout past ``timeout``.

        ``stream(n, chunk)`` is called with each chunk of stdout (n=1) and stderr (n=2) as it
        arrives. Bad values (NUL, lone surrogates, a bad env name or timeout) raise ValueError
        before anything is sent.
        """

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

    def run_ps(self, invocation: Invocation, *, timeout: float) -> PSResult:
        """Run PowerShell (transports with a PowerShell engine override this)."""
        raise UnsupportedOperation(
            f"{self.scheme} targets run no PowerShell", target=self.target.url,
            hint="use target.run() for shell commands; run_ps needs a winrm://, pwsh+ssh://, "
                 "pwsh:// or (later) vm:// target")

    # -- background jobs: by default on a second connection of the same kind ----------------
    def sibling(self) -> Transport:
        """A new, unopened transport to the same target (the connection a job runs on)."""
        return type(self)(self.target, self.credential, self.settings)

    def start(self, cmd: str, *, timeout: float, env: Mapping[str, str] | None = None,
              cwd: str | None = None, stream: OutputCallback | None = None) -> Job[CommandResult]:
        """Run ``cmd`` as :meth:`run` does, in the background. This default runs it on a
        second connection (:meth:`sibling`); transports that can run commands concurrently on
        their own connection override it (:class:`ShellTransport`)."""
        run_spec(cmd, timeout=timeout, env=env, cwd=cwd)  # bad values raise here, not later
        return on_own_connection(
            self.sibling, lambda t: t.run(cmd, timeout=timeout, env=env, cwd=cwd, stream=stream),
            label=self.target.url, what=cmd)

    def start_ps(self, invocation: Invocation, *, timeout: float) -> Job[PSResult]:
        """Run PowerShell in the background on a second RunspacePool (as ``Start-Job`` runs a
        job in a runspace of its own: the session's variables are not there)."""
        if type(self).run_ps is Transport.run_ps:
            self.run_ps(invocation, timeout=timeout)  # raises UnsupportedOperation
        return on_own_connection(self.sibling, lambda t: t.run_ps(invocation, timeout=timeout),
                                 label=self.target.url, what="<PowerShell job>")


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
    """POSIX targets: commands go through the command agent (``agent.py``) kept for the session.

    Each command runs as ``$SHELL -c cmd`` in the account's login shell, as ``ssh host cmd``
    does, in a process group of its own; everything a session started is killed when it ends.
    Where the agent cannot start (no ``python3`` on the target) every command gets a process of
    its own (:meth:`_exec_once`): the same semantics, slower, and no cleanup of what it left.

    Subclasses give :meth:`_spawn_agent` (pipes of the bootstrap command), :meth:`_spawn_shell`
    (a ``/bin/sh`` for :meth:`open_shell`, plus a function that kills a process group) and
    :meth:`_exec_once`.
    """

    _runner: AgentRunner | None = None
    _fallback: str | None = None  # why there is no agent, once known

    def __init__(self, target: Target, credential: Credential | None, settings: Settings) -> None:
        super().__init__(target, credential, settings)
        self._runner_lock = threading.Lock()  # jobs' threads and the test's share the agent

    @abc.abstractmethod
    def _spawn_agent(self, source: bytes) -> ShellPipes:
        """Start ``python3`` running the agent: the bootstrap, then write ``source`` to it."""

    @abc.abstractmethod
    def _spawn_shell(self) -> tuple[ShellPipes, Callable[[int], None]]:
        """Start ``/bin/sh`` reading commands from stdin (for the stateful shell)."""

    @abc.abstractmethod
    def _exec_once(self, cmd: str, timeout: float) -> Completed:
        """Run one command in a process of its own (no agent)."""

    def _kill_groups(self, groups: list[int]) -> None:
        """Kill process groups on the target (the agent died without ending them)."""

    def _on_agent_lost(self, runner: AgentRunner) -> None:
        if runner.groups:
            log.warning("%s: the command agent died; killing the %d process group(s) it left",
                        self.target, len(runner.groups))
            try:
                self._kill_groups(sorted(runner.groups))
            except (PSDirectError, OSError) as exc:
                log.warning("%s: could not kill them: %s", self.target, exc)
            runner.groups.clear()

    def _on_unresponsive(self) -> None:
        """The agent stopped answering: drop it (SSH drops the connection, so the next call
        reopens it and fails within the connect timeout if the host is gone)."""
        self.close()

    def _ensure_runner(self) -> AgentRunner | None:
        with self._runner_lock:
            return self._ensure_runner_locked()

    def _ensure_runner_locked(self) -> AgentRunner | None:
        if self._fallback is not None:
            return None
        if self._runner is not None and self._runner.alive:
            return self._runner
        if self._runner is not None:
            log.info("%s: the command agent ended while idle; starting a new one", self.target)
            self._on_agent_lost(self._runner)
        source = agent_source()
        runner = AgentRunner(self._spawn_agent(source), label=self.target.url)
        try:
            runner.start(timeout=self.settings.connect_timeout)
        except AgentUnavailable as exc:
            if not self.alive:
                raise SessionBroken(f"the connection closed while starting: {exc.message}",
                                    target=self.target.url) from None
            log.warning("%s: %s; running one process per command instead (slower; processes a "
                        "command leaves behind are not cleaned up)", self.target, exc.message)
            self._fallback = exc.message
            return None
        self._runner = runner
        return runner

    def run(self, cmd: str, *, timeout: float, env: Mapping[str, str] | None = None,
            cwd: str | None = None, stream: OutputCallback | None = None) -> CommandResult:
        start = time.perf_counter()
        spec = run_spec(cmd, timeout=timeout, env=env, cwd=cwd)  # refuse bad values now, once
        sent = self._send(spec)
        if sent is None:
            done = self._exec_once(compose(cmd, env=env, cwd=cwd) if env or cwd else cmd,
                                   spec.timeout)
        else:
            done = self._collect(*sent, spec, stream)
        return _result(done, cmd, self.target, time.perf_counter() - start)

    def start(self, cmd: str, *, timeout: float, env: Mapping[str, str] | None = None,
              cwd: str | None = None, stream: OutputCallback | None = None) -> Job[CommandResult]:
        """Native jobs: the session's agent runs the command next to any other; cancelling
        asks it to kill that command's process group."""
        start = time.perf_counter()
        spec = run_spec(cmd, timeout=timeout, env=env, cwd=cwd)
        sent = self._send(spec)
        if sent is None:  # no agent: each job gets a connection (and a process) of its own
            return super().start(cmd, timeout=timeout, env=env, cwd=cwd, stream=stream)
        runner, cid = sent

        def work() -> CommandResult:
            done = self._collect(runner, cid, spec, stream)
            return _result(done, cmd, self.target, time.perf_counter() - start)

        return Job(work, lambda: runner.cancel(cid), label=self.target.url, what=cmd)

    def _send(self, spec: RunSpec) -> tuple[AgentRunner, int] | None:
        """Hand ``spec`` to the agent (a new one if it ended while idle); None: no agent."""
        for attempt in (1, 2):
            runner = self._ensure_runner()
            if runner is None:
                return None
            try:
                return runner, runner.send(spec, self.settings.max_output)
            except AgentGone:  # it died while idle and nothing ran: a new agent takes over
                self._on_agent_lost(runner)
                if attempt == 2 or not self.alive:
                    raise
        raise AssertionError("unreachable")

    def _collect(self, runner: AgentRunner, cid: int, spec: RunSpec,
                 stream: OutputCallback | None) -> Completed:
        try:
            return runner.collect(cid, spec, self.settings.max_output, stream)
        except SessionBroken:  # it died while running this command
            self._on_agent_lost(runner)
            raise
        except CommandTimeout:
            if not runner.alive:
                self._on_unresponsive()
            raise

    def open_shell(self) -> StatefulShell:
        pipes, kill = self._spawn_shell()
        executor = ShellExecutor(pipes, label=self.target.url, kill_group=kill)
        try:
            executor.start(timeout=self.settings.connect_timeout)
        except BaseException:
            executor.close()
            raise
        return StatefulShell(executor, self.target, self.settings.command_timeout)

    def close(self) -> None:
        if self._runner is not None:
            self._runner.close()
            self._runner = None
