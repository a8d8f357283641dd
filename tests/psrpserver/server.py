"""The OutOfProc PSRP server loop: stdin packets in, stdout packets out, handlers in threads.

Packets are parsed and written the way PowerShell's ``OutOfProcessUtils`` does (an XML element per
line, its own format strings), independently of the plugin's framing code, so a framing bug on
either side shows. Each pipeline's handler runs in a thread; ``<Signal>`` stops it (the pipeline
goes to Stopped at once, as PowerShell's does), ``<Close>`` of the pool ends the process.
"""

from __future__ import annotations

import base64
import importlib.util
import os
import sys
import threading
import traceback
import uuid
from typing import Any, BinaryIO
from xml.etree import ElementTree

import psrpcore
from psrpcore.types import (
    ErrorCategory,
    ErrorCategoryInfo,
    NETException,
    PSInvocationState,
)

from .context import Context, Handler
from .handlers import HANDLERS

EMPTY = uuid.UUID(int=0)


def load_handlers() -> list[tuple[str, Handler]]:
    """Built-in handlers, after those of ``$PSRP_SERVER_HANDLERS`` (a .py with HANDLERS)."""
    extra: list[tuple[str, Handler]] = []
    path = os.environ.get("PSRP_SERVER_HANDLERS")
    if path:
        spec = importlib.util.spec_from_file_location("psrp_extra_handlers", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        extra = list(module.HANDLERS.items())
    return extra + list(HANDLERS.items())


class Server:
    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.lock = threading.RLock()
        self.pool = psrpcore.ServerRunspacePool()
        self.state: dict[str, Any] = {}  # per pool: what handlers keep between pipelines
        self.contexts: dict[uuid.UUID, Context] = {}
        self.handlers = load_handlers()

    # --- writing, as OutOfProcessUtils formats it -------------------------------------------
    def _line(self, text: str) -> None:
        self.out.write(text.encode() + b"\n")
        self.out.flush()

    def guid_packet(self, tag: str, guid: uuid.UUID | None) -> None:
        with self.lock:
            self._line(f"<{tag} PSGuid='{guid or EMPTY}' />")

    def flush(self) -> None:
        with self.lock:
            while (payload := self.pool.data_to_send()) is not None:
                stream = ("PromptResponse" if payload.stream_type ==
                          psrpcore.StreamType.prompt_response else "Default")
                self._line(f"<Data Stream='{stream}' PSGuid='{payload.pipeline_id or EMPTY}'>"
                           f"{base64.b64encode(payload.data).decode()}</Data>")

    # --- reading ------------------------------------------------------------------------------
    def serve(self, stdin: BinaryIO) -> int:
        for raw in stdin:
            line = raw.strip()
            if not line:
                continue
            element = ElementTree.fromstring(line)
            guid_text = element.attrib["PSGuid"]
            guid = None if uuid.UUID(guid_text) == EMPTY else uuid.UUID(guid_text)
            if element.tag == "Data":
                self.on_data(base64.b64decode(element.text or ""), element.attrib["Stream"], guid)
            elif element.tag == "Command":
                with self.lock:
                    assert guid is not None
                    psrpcore.ServerPipeline(self.pool, guid)
                self.guid_packet("CommandAck", guid)
            elif element.tag == "Signal":
                self.on_signal(guid)
            elif element.tag == "Close":
                if guid is None:
                    self.guid_packet("CloseAck", None)
                    return 0
                self.on_close(guid)
            else:
                raise ValueError(f"unexpected packet {element.tag}")
        return 0

    def on_data(self, data: bytes, stream: str, guid: uuid.UUID | None) -> None:
        kind = (psrpcore.StreamType.prompt_response if stream == "PromptResponse"
                else psrpcore.StreamType.default)
        started: list[Context] = []
        with self.lock:
            self.pool.receive_data(psrpcore.PSRPPayload(data, kind, guid))
            while (event := self.pool.next_event()) is not None:
                if isinstance(event, psrpcore.CreatePipelineEvent):
                    started.append(self._context(event.pipeline_id))
            self.flush()
            self.guid_packet("DataAck", guid)
        for ctx in started:
            threading.Thread(target=self.run_pipeline, args=(ctx,), daemon=True).start()

    def _context(self, pipeline_id: uuid.UUID) -> Context:
        pipeline = self.pool.pipeline_table[pipeline_id]
        ctx = self.contexts[pipeline_id] = Context(self, pipeline)
        pipeline.start()
        self.flush()
        return ctx

    def run_pipeline(self, ctx: Context) -> None:
        handler = next((h for marker, h in self.handlers if marker in ctx.script), None)
        try:
            if handler is None:
                ctx.error(f"The term '{ctx.script.strip()[:40]}' is not recognized as a name of "
                          "a cmdlet, function, script file, or executable program.",
                          category=ErrorCategory.ObjectNotFound,
                          fqid="CommandNotFoundException", exception="CommandNotFoundException")
            else:
                handler(ctx)
        except Exception as exc:  # a handler's bug reads as a terminating error
            ctx.fail(f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        with self.lock:
            if ctx.pipeline.state == PSInvocationState.Running:
                ctx.pipeline.complete()
            self.flush()

    def on_signal(self, guid: uuid.UUID | None) -> None:
        with self.lock:
            ctx = self.contexts.get(guid) if guid else None
            if ctx is not None:
                ctx.stopped.set()
                if ctx.pipeline.state == PSInvocationState.Running:
                    ctx.pipeline.stop()
                self.flush()
        self.guid_packet("SignalAck", guid)

    def on_close(self, guid: uuid.UUID) -> None:
        with self.lock:
            ctx = self.contexts.pop(guid, None)
            if ctx is not None:
                ctx.stopped.set()
                if ctx.pipeline.state == PSInvocationState.Running:
                    ctx.pipeline.stop()
                self.flush()
                ctx.pipeline.close()
        self.guid_packet("CloseAck", guid)


def terminating(message: str) -> psrpcore.types.ErrorRecord:
    return psrpcore.types.ErrorRecord(
        Exception=NETException(Message=message),
        CategoryInfo=ErrorCategoryInfo(Category=ErrorCategory.OperationStopped),
        FullyQualifiedErrorId="ScriptHalted")


def main(argv: list[str]) -> int:
    # pwsh -NoLogo -NoProfile -s / -sshs: the arguments select server mode; nothing else here
    server = Server(sys.stdout.buffer)
    return server.serve(sys.stdin.buffer)
