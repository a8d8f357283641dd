"""Background jobs: a command (or PowerShell script) running on a target while the test goes on.

``target.start(cmd)`` returns a :class:`Job` at once; its work runs in a worker thread of its own,
bounded as ``target.run`` is (the command's timeout, the agent's report, the connect timeout).
Transports give jobs one of two ways:

* **native** (``ShellTransport``: SSH, ``local://``, and any transport with the command agent):
  the request goes to the session's own agent, which runs it concurrently with everything else;
  ``cancel()`` asks the agent to kill that command's process group.
* **own connection** (:func:`on_own_connection`, the default of :meth:`Transport.start`): the
  worker opens a second connection of the same kind, runs the work there and closes it;
  ``cancel()`` closes that connection, which ends what it started (the transport contract).

Example::

    job = target.start("sleep 1; echo done", timeout=30)
    job.done                      # False
    job.result().stdout           # 'done\\n' (waits; raises what target.run would raise)
    target.start("sleep 100").cancel()   # its remote process group is killed
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar

from .errors import CommandCancelled, PSDirectError, UnsupportedOperation

if TYPE_CHECKING:
    from .transports.base import Transport

log = logging.getLogger(__name__)
R = TypeVar("R")
#: how long ``cancel()`` waits for the work to end after asking the target to end it
CANCEL_WAIT = 10.0


class Job(Generic[R]):
    """One piece of background work on one target: ``done``, ``wait``, ``result``, ``cancel``.

    Across a dropped connection: only ``start_ps`` jobs on ``winrm://`` targets survive one
    (:class:`~pytest_psdirect.powershell.wsman_job.WSManJob`: WSMan disconnects from the
    RunspacePool, the server keeps the pipeline running, and the job connects to it again and
    collects its output); they also have :meth:`disconnect` and :meth:`reconnect`. Elsewhere
    (ssh, local, pwsh+ssh, pwsh, vm, container, qemu) the remote side ends with its connection
    (OutOfProc, SSH channels, agents have no disconnected state) and such a job fails.
    """

    def __init__(self, work: Callable[[], R], cancel: Callable[[], None], *, label: str,
                 what: str) -> None:
        self.label = label
        self.what = what
        self._cancel_work = cancel
        self._cancelled = False
        self._ended = threading.Event()
        self._value: R | None = None
        self._error: BaseException | None = None
        threading.Thread(target=self._main, args=(work,), daemon=True,
                         name=f"psdirect-job-{label}").start()

    def __repr__(self) -> str:
        state = "cancelled" if self._cancelled else "done" if self.done else "running"
        return f"<Job {self.what!r} on {self.label} {state}>"

    def _main(self, work: Callable[[], R]) -> None:
        try:
            self._value = work()
        except BaseException as exc:  # kept for result(); a job thread must never raise
            self._error = exc
        finally:
            self._ended.set()

    @property
    def done(self) -> bool:
        """True once the work has ended (finished, failed or cancelled)."""
        return self._ended.is_set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds (None: until it ends, which the command's own timeout
        bounds); return :attr:`done`."""
        return self._ended.wait(timeout)

    def result(self, timeout: float | None = None) -> R:
        """The result ``run``/``run_ps`` would have returned, or the error it would have raised.

        Raises :class:`TimeoutError` if the job is still running after ``timeout`` seconds (the
        job keeps running), :class:`~pytest_psdirect.errors.CommandCancelled` after
        :meth:`cancel`.
        """
        __tracebackhide__ = True
        if not self._ended.wait(timeout):
            raise TimeoutError(f"job {self.what!r} on {self.label} still running after "
                               f"{timeout:g}s")
        if self._cancelled and not isinstance(self._error, CommandCancelled):
            raise CommandCancelled(f"job {self.what!r} was cancelled", target=self.label,
                                   command=self.what)
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]  # set when no error was kept

    def disconnect(self, wait: bool = True) -> None:
        """Leave the work running on the target without a connection (winrm:// PowerShell jobs
        only; see the class docstring)."""
        raise UnsupportedOperation(f"job {self.what!r} cannot disconnect", target=self.label,
                                   hint="only start_ps jobs on winrm:// targets survive a "
                                        "disconnect (WSMan disconnected RunspacePools)")

    def reconnect(self) -> None:
        """Connect again after :meth:`disconnect` (winrm:// PowerShell jobs only)."""
        self.disconnect()

    def cancel(self, wait: bool = True) -> bool:
        """End the job and its remote processes; with ``wait``, wait (bounded) for it to end.
        False if it had already ended."""
        if self.done:
            return False
        self._cancelled = True
        try:
            self._cancel_work()
        except (PSDirectError, OSError) as exc:
            log.warning("%s: cancelling %r: %s", self.label, self.what, exc)
        if wait and not self._ended.wait(CANCEL_WAIT):
            log.warning("%s: job %r did not end within %gs of its cancel; its processes end "
                        "with the session", self.label, self.what, CANCEL_WAIT)
        return True


def on_own_connection(make: Callable[[], Transport], work: Callable[[Transport], R], *,
                      label: str, what: str) -> Job[R]:
    """A job whose work runs on a second connection (``make()``, opened in the worker thread,
    closed when the work ends); cancelling closes that connection, which ends what it started.

    This is how a transport without concurrency of its own gets jobs: it only has to be
    constructible again from its target, credential and settings, and its ``close()`` must end
    the remote processes it started (both are the Transport contract).
    """
    lock = threading.Lock()
    opened: list[Transport] = []
    stop = threading.Event()

    def run() -> R:
        transport = make()
        with lock:
            if stop.is_set():
                raise CommandCancelled(f"job {what!r} was cancelled", target=label, command=what)
            opened.append(transport)
        try:
            transport.open()
            return work(transport)
        finally:
            transport.close()

    def cancel() -> None:
        with lock:
            stop.set()
            for transport in opened:
                transport.close()

    return Job(run, cancel, label=label, what=what)
