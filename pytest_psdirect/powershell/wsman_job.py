"""``start_ps`` jobs on ``winrm://`` targets that survive a dropped connection.

WSMan keeps a RunspacePool on the server when its client disconnects (MS-PSRP disconnected
pools, PowerShell's ``Disconnect-PSSession``/``Connect-PSSession``): the pipeline goes on
running and its output is buffered until a client connects again. A :class:`WSManJob` runs its
script on a pool of its own (a second connection, as every ``start_ps`` job does); when a
receive fails because the connection broke, or after :meth:`WSManJob.disconnect` and
:meth:`WSManJob.reconnect`, it connects to the same pool over a new connection and goes on
collecting, so :meth:`~pytest_psdirect.jobs.Job.result` is the whole PSResult.

Every wait is bounded by the job's timeout: reconnect attempts are retried every
:data:`RETRY_EVERY` seconds until then, and a job left disconnected past it fails with
:class:`~pytest_psdirect.errors.CommandTimeout` (closing the job's connection deletes the pool
on the server, which ends the pipeline).

Example::

    job = target.start_ps("Start-Sleep 30; 'done'", timeout=120)
    job.disconnect()              # WSMan Disconnect: the server keeps the pipeline running
    ...                           # the network may go away here
    job.reconnect()               # Connect over a new connection, as a new client
    job.result().output           # ['done']
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import requests
from pypsrp.complex_objects import PSInvocationState
from pypsrp.exceptions import WinRMTransportError
from pypsrp.powershell import PowerShell

from ..errors import CommandCancelled, CommandTimeout, PSDirectError
from ..jobs import Job
from .command import Invocation
from .result import PSResult
from .wsman import MAX_POLL, WSManEngine

if TYPE_CHECKING:
    from ..transports.winrm import WinRMTransport

log = logging.getLogger(__name__)
#: seconds between attempts to connect again after a drop
RETRY_EVERY = 2.0
#: longest receive poll of a job (seconds): a requested disconnect waits at most this long
JOB_POLL = 5
#: a dropped connection, as requests and pypsrp report it (HTTP errors included)
DROPS = (requests.RequestException, ConnectionError, WinRMTransportError)


class WSManJob(Job[PSResult]):
    """A PowerShell job on its own WinRM RunspacePool that can disconnect and reconnect.

    ``disconnect()`` asks the job to disconnect from its pool (done between two receives, so
    within :data:`JOB_POLL` seconds) and waits for it; ``reconnect()`` lets it connect again.
    A connection that breaks on its own is reconnected without being asked.
    """

    def __init__(self, make: Callable[[], WinRMTransport], invocation: Invocation, *,
                 timeout: float, label: str) -> None:
        self._make = make
        self._invocation = invocation
        self._timeout = timeout
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._want_off = threading.Event()
        self._is_off = threading.Event()
        self._want_on = threading.Event()
        self._transport: WinRMTransport | None = None
        #: how many times the job connected to its pool again (a drop or ``reconnect()``)
        self.reconnects = 0
        super().__init__(self._run, self._cancel, label=label, what="<PowerShell job>")

    # -- the test's side -----------------------------------------------------------------------
    def disconnect(self, wait: bool = True, timeout: float = JOB_POLL + MAX_POLL) -> None:
        """Disconnect from the pool; the server keeps the pipeline running. With ``wait``,
        return once disconnected (TimeoutError after ``timeout`` s; at once if the job ended)."""
        self._want_on.clear()
        self._want_off.set()
        if wait and not self._is_off.wait(timeout) and not self.done:
            raise TimeoutError(f"job on {self.label} did not disconnect within {timeout:g}s")

    def reconnect(self) -> None:
        """Connect to the pool again (the job's thread does it and collects the output)."""
        self._want_off.clear()
        self._want_on.set()

    def _cancel(self) -> None:
        with self._lock:
            self._stop.set()
            if self._transport is not None:
                self._transport.close()

    # -- the job's thread ----------------------------------------------------------------------
    def _run(self) -> PSResult:
        transport = self._make()
        with self._lock:
            if self._stop.is_set():
                raise CommandCancelled("job was cancelled", target=self.label, command=self.what)
            self._transport = transport
        try:
            transport.open()
            engine = transport.wsman_engine()
            try:
                return self._collect(engine)
            except PSDirectError:
                raise
            except Exception as exc:  # pypsrp's errors -> ours, as run_ps maps them
                raise engine.error(exc) from None
        finally:
            self._is_off.set()  # nobody waits for a disconnect of an ended job
            transport.close()

    def _collect(self, engine: WSManEngine) -> PSResult:
        start = time.monotonic()
        deadline = start + self._timeout
        ps = engine.begin(self._invocation)
        while ps.state == PSInvocationState.RUNNING or self._is_off.is_set():
            if self._stop.is_set():
                raise CommandCancelled("job was cancelled", target=self.label, command=self.what)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if self._is_off.is_set():
                    raise CommandTimeout(f"the job was still disconnected after its "
                                         f"{self._timeout:g} s", target=self.label,
                                         timeout=self._timeout, command="<script>")
                engine.stop_timed_out(ps, self._timeout)
            if self._want_off.is_set() and not self._is_off.is_set():
                try:
                    engine.disconnect()
                except DROPS as exc:  # reconnect() disconnects over the new connection
                    log.warning("%s: disconnecting: %s", self.label, type(exc).__name__)
                log.info("%s: job disconnected from its RunspacePool", self.label)
                self._is_off.set()
            elif self._is_off.is_set():
                if self._want_on.wait(min(1.0, remaining)):
                    self._connect_again(engine, ps, deadline)
                    self._is_off.clear()
                    self._want_on.clear()
            else:
                try:
                    ps.poll_invoke(timeout=max(1, min(JOB_POLL, int(remaining) or 1)))
                except DROPS as exc:
                    log.warning("%s: the job's connection dropped (%s); connecting to its "
                                "RunspacePool again", self.label, type(exc).__name__)
                    self._connect_again(engine, ps, deadline)
        return engine.finish(ps, self._invocation, start)

    def _connect_again(self, engine: WSManEngine, ps: PowerShell, deadline: float) -> None:
        """Reconnect to the pool and pipeline, retrying a connection failure until ``deadline``."""
        while True:
            try:
                engine.reconnect(ps)
                self.reconnects += 1
                log.info("%s: job connected to its RunspacePool again", self.label)
                return
            except DROPS as exc:
                if time.monotonic() + RETRY_EVERY >= deadline or self._stop.is_set():
                    raise CommandTimeout(f"could not connect to the job's RunspacePool again "
                                         f"({type(exc).__name__})", target=self.label,
                                         timeout=self._timeout, command="<script>") from None
                log.debug("%s: reconnect failed (%s); retrying", self.label, type(exc).__name__)
                self._stop.wait(RETRY_EVERY)
