"""Sessions: one open transport per target per process, reused by every test.

:class:`TargetSession` is what tests receive as ``target``: commands, PowerShell, files, jobs,
testinfra and compliance checks on one target, over a transport it reopens once when it breaks.
:class:`~pytest_psdirect.pool.SessionPool` opens and closes them.

Example::

    pool = SessionPool(TransportRegistry(), Settings(), credential_for=lambda t, required: None)
    web = pool.get(parse_target("local://"))
    web.run("uname -s").stdout          # 'Linux\\n'
    web.start("sleep 5").cancel()        # a background job
    pool.close_all()
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from .errors import (
    CommandFailed,
    PowerShellFailed,
    PSDirectError,
    SessionBroken,
)
from .jobs import CANCEL_WAIT, Job
from .powershell.command import Invocation, build_invocation
from .powershell.command import from_file as invocation_from_file
from .powershell.result import PSResult
from .results import CommandResult
from .settings import Settings, validate_timeout
from .targets import Target
from .transports import StatefulShell, Transport
from .transports.runner import OutputCallback
from .transports.shellproto import format_command

if TYPE_CHECKING:
    import testinfra.host

    from .compliance.model import ComplianceResult, Mode, Resource
    from .compliance.runner import Checker

log = logging.getLogger(__name__)


class Lease(Protocol):
    """A slot a session holds while it is open (see :mod:`pytest_psdirect.throttle`)."""

    def release(self) -> None: ...


class TargetSession:
    """An open connection to one target: commands, files, testinfra, later PowerShell."""

    def __init__(self, target: Target, transport: Transport, reopen: Callable[[], Transport],
                 settings: Settings,
                 on_reopened: Callable[[TargetSession], None] | None = None,
                 lease: Lease | None = None, relet: Callable[[], Lease] | None = None) -> None:
        self.spec = target
        self._transport = transport
        self._reopen = reopen
        self._settings = settings
        self._on_reopened = on_reopened
        self._lease = lease  # the throttle slot held while open; ``relet`` takes a new one
        self._relet = relet
        self._dead: PSDirectError | None = None  # a failed reopen: every later call raises it
        self._reopen_lock = threading.Lock()  # jobs' threads may find the connection broken too
        self._jobs: list[Job[Any]] = []  # cancelled at close() if still running
        self._testinfra: testinfra.host.Host | None = None
        self._checker: Checker | None = None

    # -- identity ----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """Canonical URL (the test id)."""
        return self.spec.url

    @property
    def name(self) -> str:
        """Inventory name, else the canonical URL."""
        return self.spec.name or self.spec.url

    @property
    def tags(self) -> frozenset[str]:
        return self.spec.tags

    @property
    def powershell(self) -> bool:
        """True when this target runs PowerShell (``run_ps``) rather than a POSIX shell."""
        return type(self._transport).run_ps is not Transport.run_ps

    def __repr__(self) -> str:
        return f"<TargetSession {self.url}>"

    # -- commands ----------------------------------------------------------------------------
    def _live_transport(self) -> Transport:
        """The open transport; a broken connection is reopened once (per break).

        If that reopen fails, the session is dead for the rest of the run: every later call
        raises the same error at once instead of waiting for another connect timeout.
        """
        __tracebackhide__ = True
        with self._reopen_lock:
            return self._live_transport_locked()

    def _live_transport_locked(self) -> Transport:
        __tracebackhide__ = True
        if self._dead is not None:
            raise self._dead
        if not self._transport.alive:
            log.warning("%s: connection lost, reopening once", self.url)
            self._transport.close()
            try:
                if self._lease is None and self._relet is not None:  # closed, then used again
                    self._lease = self._relet()
                self._transport = self._reopen()
            except PSDirectError as exc:
                self._dead = SessionBroken(
                    f"the connection broke and reopening it failed: {exc.message}",
                    target=self.url, hint=exc.hint or "check the host and the network")
                raise self._dead from None
            if self._on_reopened is not None:
                self._on_reopened(self)
        return self._transport

    def _timeout(self, timeout: float | None) -> float:
        """``timeout`` checked (ValueError), or the session's default command timeout."""
        return self._settings.command_timeout if timeout is None else \
            validate_timeout(timeout, "timeout")

    def ensure_open(self) -> None:
        """Reopen a broken connection now (once per break), or raise why it cannot be."""
        __tracebackhide__ = True
        self._live_transport()

    def run(self, cmd: str, *args: object, timeout: float | None = None, check: bool = False,
            env: Mapping[str, str] | None = None, cwd: str | None = None,
            stream: OutputCallback | None = None) -> CommandResult:
        """Run a shell command; ``%s`` in ``cmd`` takes each of ``args``, shell-quoted.

        The command runs as ``ssh host cmd`` runs it: ``$SHELL -c cmd`` in the account's login
        shell, isolated (a ``cd``/``export`` does not carry over; see :meth:`shell`), stdin empty.
        ``stream(n, chunk)`` sees stdout (n=1) and stderr (n=2) chunks as they arrive. A bad
        value (NUL, lone surrogate, bad env name, a timeout that is not finite and > 0) raises
        ValueError before anything is sent; the session stays usable.

        >>> target.run("ls -l %s", "/tmp/a b").rc        # doctest: +SKIP
        0
        """
        __tracebackhide__ = True
        command = format_command(cmd, *args)
        wait = self._timeout(timeout)
        log.debug("RUN %s on %s", command, self.url)
        result = self._live_transport().run(command, timeout=wait, env=env, cwd=cwd,
                                            stream=stream)
        if check and result.rc != 0:
            raise _failed(result, (0,))
        return result

    def run_expect(self, expected: Iterable[int], cmd: str, *args: object,
                   **kwargs: Any) -> CommandResult:
        """Run and raise :class:`CommandFailed` unless the exit status is in ``expected``."""
        __tracebackhide__ = True
        allowed = tuple(expected)
        result = self.run(cmd, *args, **kwargs)
        if result.rc not in allowed:
            raise _failed(result, allowed)
        return result

    def check_output(self, cmd: str, *args: object, **kwargs: Any) -> str:
        """Run, require rc 0, return stdout without its trailing newline."""
        __tracebackhide__ = True
        return self.run_expect([0], cmd, *args, **kwargs).stdout.rstrip("\r\n")

    def start(self, cmd: str, *args: object, timeout: float | None = None,
              env: Mapping[str, str] | None = None, cwd: str | None = None,
              stream: OutputCallback | None = None) -> Job[CommandResult]:
        """Start ``cmd`` in the background (as :meth:`run` would run it); return at once.

        Many jobs run at once, next to ``run`` calls; ``job.result()`` gives the
        :class:`CommandResult` (or raises what ``run`` would), ``job.cancel()`` kills its
        remote processes. Jobs still running when the session closes are cancelled.

        >>> job = target.start("sleep 5; echo done", timeout=60)   # doctest: +SKIP
        >>> job.done, job.result().stdout                          # doctest: +SKIP
        (False, 'done\n')
        """
        __tracebackhide__ = True
        command = format_command(cmd, *args)
        log.debug("START %s on %s", command, self.url)
        job = self._live_transport().start(command, timeout=self._timeout(timeout), env=env,
                                           cwd=cwd, stream=stream)
        return self._track(job)

    def start_ps(self, script: str, *args: Any, timeout: float | None = None,
                 parameters: Mapping[str, Any] | None = None, **params: Any) -> Job[PSResult]:
        """Start PowerShell in the background (``Invoke-Command -AsJob``); values as data.

        The job runs on a RunspacePool of its own (a second connection), as ``Start-Job``
        does: variables of this session are not visible to it.
        """
        __tracebackhide__ = True
        invocation = build_invocation(script, args, {**params, **(parameters or {})})
        job = self._live_transport().start_ps(invocation, timeout=self._timeout(timeout))
        return self._track(job)

    def _track(self, job: Job[Any]) -> Job[Any]:
        with self._reopen_lock:
            self._jobs = [j for j in self._jobs if not j.done] + [job]
        return job

    def cancel_jobs(self) -> int:
        """Cancel every job of this session still running; return how many were."""
        with self._reopen_lock:
            jobs, self._jobs = self._jobs, []
        running = [job for job in jobs if not job.done]
        for job in running:  # all asked first, then awaited together: one bound for all
            log.info("%s: cancelling job %r (the session is closing)", self.url, job.what)
            job.cancel(wait=False)
        deadline = time.monotonic() + CANCEL_WAIT
        for job in running:
            job.wait(max(0.0, deadline - time.monotonic()))
        return len(running)

    @contextlib.contextmanager
    def shell(self) -> Iterator[StatefulShell]:
        """A shell whose state persists between commands (opt-in; closed on exit).

        >>> with target.shell() as sh:                    # doctest: +SKIP
        ...     sh.run("cd /etc")
        ...     sh.run("pwd").stdout
        '/etc\\n'
        """
        shell = self._live_transport().open_shell()
        try:
            yield shell
        finally:
            shell.close()

    # -- files, PowerShell, testinfra ---------------------------------------------------------
    def put(self, local: str, remote: str) -> None:
        """Copy a local file to the target."""
        self._live_transport().put(local, remote)

    def get(self, remote: str, local: str) -> None:
        """Copy a file from the target."""
        self._live_transport().get(remote, local)

    def run_ps(self, script: str, *args: Any, timeout: float | None = None, check: bool = False,
               parameters: Mapping[str, Any] | None = None, **params: Any) -> PSResult:
        """Run PowerShell on this target's RunspacePool; values go as data, never as text.

        ``args`` bind positionally, ``params`` (and ``parameters``, for names such as
        ``Timeout`` that clash with this method's own keywords) by name; a script without a
        ``param()`` block gets one naming them. State persists: ``$p`` set in one call is there
        in the next. Errors are collected in ``result.errors`` (non-terminating, as with
        ``Invoke-Command``) unless ``check=True``, which raises :class:`PowerShellFailed`.

        >>> r = target.run_ps("Get-Service -Name $Name", Name="W3SVC")   # doctest: +SKIP
        >>> r.output[0]["Status"]                                          # doctest: +SKIP
        'Running'
        """
        __tracebackhide__ = True
        invocation = build_invocation(script, args, {**params, **(parameters or {})})
        return self._invoke(invocation, timeout, check)

    def run_ps_file(self, path: str, *args: Any, timeout: float | None = None,
                    check: bool = False, **params: Any) -> PSResult:
        """Run a local ``.ps1`` on the target (``Invoke-Command -FilePath``), values as data."""
        __tracebackhide__ = True
        return self._invoke(invocation_from_file(path, args, params), timeout, check)

    def _invoke(self, invocation: Invocation, timeout: float | None, check: bool) -> PSResult:
        __tracebackhide__ = True
        wait = self._timeout(timeout)
        log.debug("RUN_PS on %s (%d args, parameters %s)", self.url, len(invocation.args),
                  sorted(invocation.params))
        result = self._live_transport().run_ps(invocation, timeout=wait)
        if check and result.had_errors:
            shown = "\n".join(f"  {e}" for e in result.errors[:5]) or "  (no error record)"
            raise PowerShellFailed(f"PowerShell reported {len(result.errors)} error(s):\n{shown}",
                                   target=self.url, result=result)
        return result

    @property
    def testinfra(self) -> testinfra.host.Host:
        """A pytest-testinfra ``Host`` whose commands run over this session."""
        if self._testinfra is None:
            from .testinfra_backend import make_host

            self._testinfra = make_host(self)
        return self._testinfra

    # -- compliance ---------------------------------------------------------------------------
    @property
    def checker(self) -> Checker:
        """This session's :class:`~pytest_psdirect.compliance.Checker` (mode, batches, results)."""
        if self._checker is None:
            from .compliance.runner import Checker

            self._checker = Checker(self)
        return self._checker

    def check(self, resource: Resource, mode: Mode | str | None = None) -> ComplianceResult:
        """Check a compliance resource here (Audit, or AuditAndSet per ``mode`` or
        ``--compliance-mode``).

        >>> assert_compliant(target.check(Sysctl("net.ipv4.ip_forward", 0)))   # doctest: +SKIP
        """
        __tracebackhide__ = True
        return self.checker.check(resource, mode)

    def close(self) -> None:
        """Cancel running jobs, close the transport and free its throttle slot (idempotent; a
        later call reopens)."""
        try:
            self.cancel_jobs()
            self._transport.close()
        finally:
            lease, self._lease = self._lease, None
            if lease is not None:
                lease.release()


def _failed(result: CommandResult, expected: tuple[int, ...]) -> CommandFailed:
    return CommandFailed(
        f"command {result.command!r} exited {result.rc}, expected {list(expected)}; "
        f"stderr: {result.stderr.strip()[:500]!r}",
        target=result.target, command=result.command, rc=result.rc,
        hint="see stdout/stderr above; pass check=False or run_expect([...]) if this is allowed")
