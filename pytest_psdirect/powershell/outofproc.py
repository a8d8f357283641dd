"""The OutOfProc engine: psrpcore's sans-IO client over any byte pipes (``pwsh -s``, SSH).

One RunspacePool per engine, kept open: state persists between invocations. Each invocation is
one ``ClientPowerShell`` (the script plus its values as PSRP arguments/parameters, never pasted
into the text): ``<Command>`` -> ``CommandAck``, its ``Data`` (each acknowledged by
``DataAck``), the streams until the pipeline state is final, then ``<Close>`` for it. Every wait
has a deadline; a reader thread turns the peer's stdout into packets, so a peer that vanishes
ends the wait at once (EOF). Past an invocation's timeout the pipeline is stopped with
``<Signal>`` (bounded by ``stop_wait``): the pool stays usable, or, if the peer does not answer,
the engine is dropped. A credential parameter makes the pool exchange session keys first.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import psrpcore
from psrpcore.types import (
    ErrorCategory,
    ErrorCategoryInfo,
    NETException,
    PSInvocationState,
    RunspacePoolState,
)
from psrpcore.types import ErrorRecord as PSErrorRecord

from ..errors import CommandTimeout, ConnectFailed, SessionBroken
from ..transports.executor import ShellPipes
from . import convert_psrpcore as conv
from .command import Invocation
from .engine import PSEngine
from .oopframing import FramingError, Packet, PacketParser, data_packet, guid_packet
from .result import ErrorRecord, PSResult

log = logging.getLogger(__name__)
_FRAGMENT = 32 << 10  # PowerShell's default PSRP fragment size
_FINAL = (PSInvocationState.Completed, PSInvocationState.Failed, PSInvocationState.Stopped)
_EOF = object()
_STDERR_TAIL = 4096


class _NoPayloads(logging.Filter):
    """psrpcore logs whole PSRP messages at DEBUG: they hold parameter values (maybe secrets)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(("Queuing PSRP Message", "Processing PSRP Message"))


logging.getLogger("psrpcore._base").addFilter(_NoPayloads())


class _Deadline(Exception):
    pass


class _Collector:
    """What one pipeline sent, until its state is final."""

    def __init__(self) -> None:
        self.result: dict[str, list[Any]] = {k: [] for k in (
            "output", "errors", "warning", "verbose", "debug", "information", "progress")}
        self.state: PSInvocationState | None = None
        self.reason: Any = None

    def add(self, event: psrpcore.PSRPEvent[Any, Any]) -> None:
        r = self.result
        if isinstance(event, psrpcore.PipelineOutputEvent):
            r["output"].append(conv.to_python(event.data))
        elif isinstance(event, psrpcore.ErrorRecordEvent):
            r["errors"].append(conv.error_record(event.record))
        elif isinstance(event, psrpcore.WarningRecordEvent | psrpcore.VerboseRecordEvent
                        | psrpcore.DebugRecordEvent):
            name = type(event).__name__.removesuffix("RecordEvent").lower()
            r[name].append(str(event.record.Message or ""))
        elif isinstance(event, psrpcore.InformationRecordEvent):
            r["information"].append(conv.information(event.record))
        elif isinstance(event, psrpcore.ProgressRecordEvent):
            r["progress"].append(conv.progress(event.record))
        elif isinstance(event, psrpcore.PipelineStateEvent) and event.state in _FINAL:
            self.state, self.reason = event.state, event.reason

    @property
    def done(self) -> bool:
        return self.state is not None


class OutOfProcEngine(PSEngine):
    """A RunspacePool over the pipes ``connect(timeout)`` returns (stdin/stdout of the peer)."""

    def __init__(self, connect: Callable[[float], ShellPipes], *, label: str,
                 stop_wait: float = 5.0, close_wait: float = 3.0) -> None:
        self._connect = connect
        self._label = label
        self._stop_wait = stop_wait
        self._close_wait = close_wait
        self._pipes: ShellPipes | None = None
        self._packets: queue.Queue[Any] = queue.Queue()
        self._pool = psrpcore.ClientRunspacePool()
        self._acks: dict[tuple[str, uuid.UUID | None], int] = {}
        self._collectors: dict[uuid.UUID, _Collector] = {}
        self._lock = threading.Lock()
        self._stderr = bytearray()
        self._eof = False
        self._broken: str | None = None
        self._key_ready = False

    # --- plumbing -------------------------------------------------------------------------
    def _read_stdout(self, pipes: ShellPipes) -> None:
        parser = PacketParser()
        try:
            while data := pipes.read_stdout():
                for packet in parser.feed(data):
                    self._packets.put(packet)
        except FramingError as exc:
            self._packets.put(exc)
        except Exception as exc:  # a closed pipe or channel ends the stream like EOF
            log.debug("%s: stdout reader ended: %s", self._label, exc)
        self._eof = True
        self._packets.put(_EOF)

    def _read_stderr(self, pipes: ShellPipes) -> None:
        try:
            while data := pipes.read_stderr():
                self._stderr += data
                del self._stderr[:-_STDERR_TAIL]
        except Exception:
            pass

    def _peer_said(self) -> str:
        text = self._stderr.decode("utf-8", "replace").strip()
        return f"; it wrote: {text[-1000:]}" if text else ""

    def _write(self, data: bytes) -> None:
        if self._pipes is None:
            raise SessionBroken("the PowerShell session is closed", target=self._label)
        try:
            self._pipes.write(data)
        except OSError as exc:
            self._broken = self._what_it_wrote() or f"cannot write to PowerShell: {exc}"
            raise SessionBroken(self._broken + self._peer_said(), target=self._label,
                                hint="the PowerShell process or connection ended; is it "
                                     "PowerShell started with -s (server mode)?") from None

    def _what_it_wrote(self) -> str | None:
        """After a failed write: what the peer printed before it ended, if that was not PSRP."""
        deadline = time.monotonic() + 1.0
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                item = self._packets.get(timeout=remaining)
            except queue.Empty:
                return None
            if item is _EOF:
                return None
            if isinstance(item, FramingError):
                return f"the peer does not speak PSRP (it wrote {item.line!r})"
        return None

    def _handle(self, item: Any) -> None:
        if item is _EOF:
            self._broken = "PowerShell ended the session (its output closed)"
            raise SessionBroken(self._broken + self._peer_said(), target=self._label,
                                hint="the PowerShell process exited or the connection dropped; "
                                     "the session is reopened once on the next test")
        if isinstance(item, FramingError):
            self._broken = f"the peer does not speak PSRP (it wrote {item.line!r})"
            raise SessionBroken(self._broken + self._peer_said(), target=self._label,
                                hint="is it PowerShell started with -s (server mode)?")
        packet: Packet = item
        if packet.tag != "Data":
            key = (packet.tag, packet.guid)
            self._acks[key] = self._acks.get(key, 0) + 1
            return
        stream = (psrpcore.StreamType.prompt_response if packet.stream == "PromptResponse"
                  else psrpcore.StreamType.default)
        self._pool.receive_data(psrpcore.PSRPPayload(packet.data, stream, packet.guid))
        while True:
            try:
                event = self._pool.next_event()
            except KeyError:  # a message for a pipeline already closed (after a stop)
                continue
            except (ValueError, TypeError, AttributeError, psrpcore.PSRPCoreError) as exc:
                self._unreadable(exc)  # psrpcore could not deserialize it: say so, go on
                continue
            if event is None:
                return
            self._on_event(event)

    def _unreadable(self, exc: Exception) -> None:
        log.warning("%s: a PSRP message could not be read: %s", self._label, exc)
        for collector in self._collectors.values():
            collector.result["errors"].append(ErrorRecord(
                f"a PSRP message could not be read ({type(exc).__name__}: {exc})",
                category="ReadError", fully_qualified_error_id="PsdirectUnreadableMessage"))

    def _on_event(self, event: psrpcore.PSRPEvent[Any, Any]) -> None:
        if isinstance(event, psrpcore.EncryptedSessionKeyEvent):
            self._key_ready = True
        elif isinstance(event, psrpcore.RunspacePoolStateEvent) and event.state in (
                RunspacePoolState.Broken, RunspacePoolState.Closed):
            reason = conv.error_record(event.reason).message if event.reason else event.state.name
            self._broken = f"the RunspacePool is {event.state.name.lower()}: {reason}"
        elif isinstance(event, psrpcore.PipelineHostCallEvent) and event.ci != -100:
            self._refuse_host_call(event)
        collector = self._collectors.get(event.pipeline_id) if event.pipeline_id else None
        if collector is not None:
            collector.add(event)

    def _refuse_host_call(self, event: psrpcore.PipelineHostCallEvent) -> None:
        error = PSErrorRecord(
            Exception=NETException(Message="this session has no interactive host"),
            CategoryInfo=ErrorCategoryInfo(Category=ErrorCategory.NotImplemented),
            FullyQualifiedErrorId="NoInteractiveHost")
        pipeline = self._pool.pipeline_table.get(event.pipeline_id)
        if pipeline is not None:
            pipeline.host_response(event.ci, error_record=error)

    def _next(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Deadline
        try:
            item = self._packets.get(timeout=remaining)
        except queue.Empty:
            raise _Deadline from None
        self._handle(item)

    def _wait_ack(self, tag: str, guid: uuid.UUID | None, deadline: float) -> None:
        key = (tag, guid)
        while not self._acks.get(key):
            self._next(deadline)
        self._acks[key] -= 1

    def _flush(self, deadline: float) -> None:
        """Send what psrpcore queued, one Data packet at a time, each acknowledged."""
        while (payload := self._pool.data_to_send(_FRAGMENT)) is not None:
            stream = ("PromptResponse" if payload.stream_type == psrpcore.StreamType.prompt_response
                      else "Default")
            self._write(data_packet(payload.data, payload.pipeline_id, stream=stream))
            self._wait_ack("DataAck", payload.pipeline_id, deadline)

    # --- PSEngine -------------------------------------------------------------------------
    def open(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        self._pipes = pipes = self._connect(timeout)
        for reader in (self._read_stdout, self._read_stderr):
            threading.Thread(target=reader, args=(pipes,), daemon=True,
                             name=f"psdirect-oop-{self._label}").start()
        try:
            self._pool.open()
            self._flush(deadline)
            while self._pool.state != RunspacePoolState.Opened and self._broken is None:
                self._next(deadline)
        except _Deadline:
            raise ConnectFailed(f"PowerShell did not open a RunspacePool within {timeout:g}s"
                                + self._peer_said(), target=self._label,
                                hint="is PowerShell installed and starting (pwsh -s)? raise "
                                     "--psdirect-connect-timeout for a slow host") from None
        except SessionBroken as exc:
            raise ConnectFailed(exc.message, target=self._label, hint=exc.hint) from None
        if self._broken is not None:
            raise ConnectFailed(self._broken, target=self._label)
        log.debug("%s: RunspacePool %s opened", self._label, self._pool.runspace_pool_id)

    @property
    def alive(self) -> bool:
        return self._pipes is not None and not self._eof and self._broken is None

    def invoke(self, invocation: Invocation, *, timeout: float) -> PSResult:
        start = time.monotonic()
        deadline = start + timeout
        with self._lock:
            if not self.alive:
                raise SessionBroken(self._broken or "the PowerShell session is closed",
                                    target=self._label, hint="the session is reopened once on "
                                    "the next test")
            values = [*invocation.args, *invocation.params.values()]
            try:
                if not self._key_ready and conv.needs_session_key(values):
                    self._exchange_key(deadline)
                ps = psrpcore.ClientPowerShell(self._pool)
                ps.add_script(invocation.script)
                for arg in invocation.args:
                    ps.add_argument(conv.to_ps(arg))
                for name, value in invocation.params.items():
                    ps.add_parameter(name, conv.to_ps(value))
            except _Deadline:
                raise self._timeout_error(invocation, timeout) from None
            collector = self._collectors[ps.pipeline_id] = _Collector()
            log.debug("%s: pipeline %s (%d args, parameters %s)", self._label, ps.pipeline_id,
                      len(invocation.args), sorted(invocation.params))
            try:
                self._run(ps, collector, deadline)
            except _Deadline:
                self._stop(ps, collector)
                raise self._timeout_error(invocation, timeout) from None
            finally:
                self._collectors.pop(ps.pipeline_id, None)
        return self._result(collector, invocation, time.monotonic() - start)

    def _exchange_key(self, deadline: float) -> None:
        self._pool.exchange_key()
        self._flush(deadline)
        while not self._key_ready:
            self._next(deadline)

    def _run(self, ps: psrpcore.ClientPowerShell, collector: _Collector, deadline: float) -> None:
        self._write(guid_packet("Command", ps.pipeline_id))
        self._wait_ack("CommandAck", ps.pipeline_id, deadline)
        ps.start()
        self._flush(deadline)
        while not collector.done:
            self._next(deadline)
            self._flush(deadline)  # host-call responses
        self._close_pipeline(ps)

    def _close_pipeline(self, ps: psrpcore.ClientPowerShell) -> None:
        ps.close()
        self._write(guid_packet("Close", ps.pipeline_id))  # its CloseAck is counted later

    def _stop(self, ps: psrpcore.ClientPowerShell, collector: _Collector) -> None:
        """Stop the pipeline (Signal); if the peer does not confirm in time, drop the engine."""
        deadline = time.monotonic() + self._stop_wait
        try:
            self._write(guid_packet("Signal", ps.pipeline_id))
            while not collector.done:
                self._next(deadline)
            self._close_pipeline(ps)
            log.info("%s: pipeline %s stopped after its timeout", self._label, ps.pipeline_id)
        except (_Deadline, SessionBroken):
            self._broken = (f"PowerShell did not stop a timed-out pipeline within "
                            f"{self._stop_wait:g}s")
            log.warning("%s: %s; dropping the session", self._label, self._broken)
            self._close_pipes()

    def _timeout_error(self, invocation: Invocation, timeout: float) -> CommandTimeout:
        return CommandTimeout(
            f"PowerShell did not finish within {timeout:g}s; the pipeline was stopped",
            target=self._label, command=invocation.script[:200], timeout=timeout,
            hint="raise timeout= (or --psdirect-command-timeout); the session stays open")

    def _result(self, collector: _Collector, invocation: Invocation, duration: float) -> PSResult:
        r = collector.result
        errors = list(r["errors"])
        if collector.state == PSInvocationState.Failed and collector.reason is not None:
            errors.append(conv.error_record(collector.reason))  # a terminating error
        return PSResult(output=r["output"], errors=errors, warning=r["warning"],
                        verbose=r["verbose"], debug=r["debug"], information=r["information"],
                        progress=r["progress"], had_errors=bool(errors), script=invocation.script,
                        target=self._label, duration=duration)

    def _close_pipes(self) -> None:
        pipes, self._pipes = self._pipes, None
        if pipes is not None:
            try:
                pipes.close()
            except Exception as exc:  # best effort: nothing more can be done with them
                log.debug("%s: closing the pipes: %s", self._label, exc)

    def close(self) -> None:
        if self._pipes is None:
            return
        if self._lock.acquire(timeout=self._close_wait):
            try:
                if self.alive and self._pool.state == RunspacePoolState.Opened:
                    self._write(guid_packet("Close", None))
                    self._wait_ack("CloseAck", None, time.monotonic() + self._close_wait)
            except (_Deadline, SessionBroken):
                log.debug("%s: no CloseAck for the RunspacePool; closing anyway", self._label)
            finally:
                self._lock.release()
        self._close_pipes()
