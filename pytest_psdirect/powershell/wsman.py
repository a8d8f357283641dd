"""The WSMan engine: one pypsrp RunspacePool over WinRM, kept open for the session.

State persists between invocations (``$p = ...`` in one ``run_ps`` is visible in the next).
Every value travels as a PSRP argument or parameter (``add_argument``/``add_parameter``), the
script itself with ``add_script``. A :class:`~pytest_psdirect.Credential` value becomes a
``PSCredential`` and a :class:`~pytest_psdirect.Secret` a ``SecureString``, both encrypted with
a session key exchanged first (``pool.exchange_keys()``); the secret is revealed only when the
parameter is serialized.

Every wait is bounded: HTTP connect/read timeouts on each request, the invocation's deadline
across its receive polls (past it the pipeline is stopped with a bounded signal and
:class:`~pytest_psdirect.errors.CommandTimeout` raised), and close.

pypsrp logs whole WSMan messages at DEBUG level, parameter values included (base64 is not a
mask): a filter on its ``pypsrp.wsman`` logger drops those two records.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

from pypsrp.complex_objects import ObjectMeta, PSCredential, PSInvocationState, RunspacePoolState
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.serializer import TaggedValue
from pypsrp.wsman import WSMan

from ..credentials.secret import Credential, Secret
from ..errors import CommandTimeout, PSDirectError, SessionBroken, UnsupportedOperation
from .command import Invocation
from .engine import PSEngine
from .result import PSResult
from .wsman_convert import build_result
from .wsman_errors import map_error
from .wsman_options import WSManOptions

log = logging.getLogger(__name__)
#: Longest single receive poll (seconds): the server answers by then with output or a timeout.
MAX_POLL = 20
#: Bound on stopping a timed-out pipeline and on closing the pool (seconds, each request).
STOP_TIMEOUT = 5
_I32 = range(-(2**31), 2**31)


class _DropMessageDumps(logging.Filter):
    """pypsrp's DEBUG "Sending message"/"Received message" records hold parameter values."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(("Sending message", "Received message"))


_dump_filter = _DropMessageDumps()


def _install_log_filter() -> None:
    logger = logging.getLogger("pypsrp.wsman")
    if _dump_filter not in logger.filters:
        logger.addFilter(_dump_filter)


WSManFactory = Callable[[float], WSMan]


class WSManEngine(PSEngine):
    """A RunspacePool on one WinRM endpoint.

    ``wsman_factory(timeout)`` builds the ``pypsrp.wsman.WSMan`` to use (tests give one whose
    ``transport`` replays recorded exchanges); by default it is built from ``options`` and
    ``credential``, with ``timeout`` as the HTTP connect timeout.
    """

    def __init__(self, options: WSManOptions, credential: Credential | None, *, label: str,
                 wsman_factory: WSManFactory | None = None) -> None:
        self.options = options
        self._credential = credential
        self._label = label
        self._factory = wsman_factory or self._new_wsman
        self._wsman: WSMan | None = None
        self._pool: RunspacePool | None = None
        self._broken = False
        self._timeout = 10.0
        _install_log_filter()

    # -- open / close --------------------------------------------------------------------------
    def _new_wsman(self, timeout: float) -> WSMan:
        opts = self.options
        seconds = max(1, math.ceil(timeout))
        extra: dict[str, Any] = {}
        if opts.certificate_pem:
            extra = {"certificate_pem": opts.certificate_pem,
                     "certificate_key_pem": opts.certificate_key_pem}
        cred = self._credential
        # cert_validation: a CA bundle path is passed through to requests' ``verify`` by pypsrp
        # (its annotation says bool only)
        return WSMan(opts.host, port=opts.port, ssl=opts.ssl, path=opts.path, auth=opts.auth,
                     cert_validation=opts.cert_validation,  # type: ignore[arg-type]
                     encryption=opts.encryption,
                     username=cred.username if cred else None,
                     password=cred.secret.reveal() if cred else None,
                     connection_timeout=seconds, read_timeout=seconds + 2,
                     operation_timeout=min(MAX_POLL, seconds), reconnection_retries=0,
                     **extra)

    def _error(self, exc: BaseException, *, opening: bool) -> PSDirectError:
        err = map_error(exc, target=self._label, auth=self.options.auth, opening=opening,
                        timeout=self._timeout)
        if isinstance(err, SessionBroken):
            self._broken = True
        return err

    def error(self, exc: BaseException) -> PSDirectError:
        """A pypsrp/requests error raised while using the pool, as ours."""
        return self._error(exc, opening=False)

    def open(self, timeout: float) -> None:
        self._timeout = timeout
        log.debug("opening a RunspacePool on %s (%s, configuration %s)", self._label,
                  self.options.auth, self.options.configuration_name)
        try:
            self._wsman = self._factory(timeout)
            pool = RunspacePool(self._wsman, configuration_name=self.options.configuration_name,
                                session_key_timeout_ms=int(timeout * 1000))
            pool.open()
        except Exception as exc:
            raise self._error(exc, opening=True) from None
        self._pool = pool

    @property
    def alive(self) -> bool:
        return (self._pool is not None and not self._broken
                and self._pool.state == RunspacePoolState.OPENED)

    def close(self) -> None:
        pool, wsman = self._pool, self._wsman
        self._pool = None
        if pool is not None and not self._broken:
            try:
                with self._short_reads():
                    pool.close()
            except Exception as exc:  # the server may be gone: closing must not fail a teardown
                log.debug("%s: closing the RunspacePool failed: %s", self._label,
                          type(exc).__name__)
        self._wsman = None
        if wsman is not None:
            wsman.close()

    # -- invoke --------------------------------------------------------------------------------
    def _pool_for_use(self) -> RunspacePool:
        if self._pool is None or self._broken:
            raise UnsupportedOperation("the WinRM session is closed", target=self._label)
        return self._pool

    def _value(self, pool: RunspacePool, value: Any) -> Any:
        """A parameter value as pypsrp serializes it; secrets become SecureStrings."""
        if isinstance(value, Credential | Secret):
            pool.exchange_keys()  # once per pool; no-op afterwards
            if isinstance(value, Secret):
                return pool.serialize(value.reveal(), ObjectMeta("SS"))
            return PSCredential(username=value.username,  # type: ignore[no-untyped-call]
                                password=value.secret.reveal())
        if isinstance(value, int) and not isinstance(value, bool) and value not in _I32:
            return TaggedValue("I64", value)
        if isinstance(value, tuple):
            return [self._value(pool, v) for v in value]
        if isinstance(value, list):
            return [self._value(pool, v) for v in value]
        if isinstance(value, dict):
            return {k: self._value(pool, v) for k, v in value.items()}
        return value

    def begin(self, invocation: Invocation) -> PowerShell:
        """Start ``invocation`` on the pool; return its running pipeline (``invoke`` and jobs)."""
        pool = self._pool_for_use()
        ps = PowerShell(pool)
        ps.add_script(invocation.script)
        for arg in invocation.args:
            ps.add_argument(self._value(pool, arg))
        for name, value in invocation.params.items():
            ps.add_parameter(name, self._value(pool, value))
        ps.begin_invoke()
        return ps

    def invoke(self, invocation: Invocation, *, timeout: float) -> PSResult:
        self._pool_for_use()
        start = time.monotonic()
        deadline = start + timeout
        try:
            ps = self.begin(invocation)
            while ps.state == PSInvocationState.RUNNING:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.stop_timed_out(ps, timeout)
                ps.poll_invoke(timeout=max(1, min(MAX_POLL, math.ceil(remaining))))
        except PSDirectError:
            raise
        except Exception as exc:
            raise self._error(exc, opening=False) from None
        return self.finish(ps, invocation, start)

    def finish(self, ps: PowerShell, invocation: Invocation, start: float) -> PSResult:
        """Release a finished pipeline and build its result."""
        self._release(ps)
        return build_result(ps, script=invocation.script, target=self._label,
                            duration=time.monotonic() - start)

    def stop_timed_out(self, ps: PowerShell, timeout: float) -> None:
        """Stop ``ps`` (bounded) and raise :class:`CommandTimeout`."""
        self._stop(ps)
        raise CommandTimeout(f"PowerShell did not finish within {timeout:g} s; its "
                             "pipeline was stopped", target=self._label,
                             timeout=timeout, command="<script>")

    # -- disconnected pools (jobs that outlive a dropped connection: wsman_job.py) -------------
    def disconnect(self) -> None:
        """Disconnect from the pool (WSMan Disconnect): the server keeps it and its running
        pipelines, buffering their output, until :meth:`reconnect` (or its idle timeout)."""
        pool = self._pool_for_use()
        with self._short_reads():
            pool.disconnect()

    def reconnect(self, ps: PowerShell) -> None:
        """Connect to the pool again over a new connection, as a new client (MS-PSRP
        ConnectRunspacePool, what ``Connect-PSSession`` does), and to ``ps``, which goes on
        receiving its output. After a drop without a Disconnect, the pool is first disconnected
        over the new connection (best effort: the server may have done it itself)."""
        pool = self._pool_for_use()
        old, self._wsman = self._wsman, self._factory(self._timeout)
        pool.connection = pool.shell.wsman = self._wsman
        if old is not None:
            old.close()
        if pool.state != RunspacePoolState.DISCONNECTED:
            try:
                self.disconnect()
            except Exception as exc:
                log.debug("%s: disconnecting after a drop: %s", self._label, type(exc).__name__)
            pool.state = RunspacePoolState.DISCONNECTED
            for pipeline in pool.pipelines.values():
                pipeline.state = PSInvocationState.DISCONNECTED
        pool._new_client = True
        pool.connect()
        ps.connect_async()  # type: ignore[no-untyped-call]

    def _release(self, ps: PowerShell) -> None:
        """Tell the server the pipeline is done (a TERMINATE signal), as ``PowerShell.close``."""
        try:
            ps.close()
        except Exception as exc:
            log.debug("%s: releasing a pipeline failed: %s", self._label, type(exc).__name__)

    def _stop(self, ps: PowerShell) -> None:
        """Stop a running pipeline (PowerShell's Ctrl-C signal), its request bounded by
        :data:`STOP_TIMEOUT`; if that fails, the pool is treated as broken (the next test
        reopens the session)."""
        try:
            with self._short_reads():
                ps.stop()
        except Exception as exc:
            log.warning("%s: stopping a timed-out pipeline failed (%s); dropping the session",
                        self._label, type(exc).__name__)
            self._broken = True

    @contextlib.contextmanager
    def _short_reads(self) -> Iterator[None]:
        """HTTP reads bounded by :data:`STOP_TIMEOUT` (signals and deletes answer at once)."""
        transport = self._wsman.transport if self._wsman is not None else None
        saved = getattr(transport, "read_timeout", None)
        if transport is not None and saved is not None:
            transport.read_timeout = STOP_TIMEOUT
        try:
            yield
        finally:
            if transport is not None and saved is not None:
                transport.read_timeout = saved
