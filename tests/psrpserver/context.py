"""What a handler sees: the script, its values, the pool's state, and ways to answer."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from psrpcore.types import (
    CommandOrigin,
    ErrorCategory,
    ErrorCategoryInfo,
    InvocationInfo,
    NETException,
    PSCredential,
    PSInvocationState,
    PSSecureString,
)

if TYPE_CHECKING:
    import psrpcore

    from .server import Server


class Context:
    """One pipeline: ``script``, ``args`` (positional), ``params`` (named), ``state`` (pool)."""

    def __init__(self, server: Server, pipeline: psrpcore.ServerPipeline) -> None:
        self.server = server
        self.pipeline = pipeline
        self.state = server.state
        self.stopped = threading.Event()
        command = pipeline.metadata.commands[0]
        self.script: str = command.command_text
        self.args: list[Any] = [v for n, v in command.parameters if n is None]
        self.params: dict[str, Any] = {n: v for n, v in command.parameters if n is not None}

    def _emit(self, write: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        with self.server.lock:
            if self.pipeline.state != PSInvocationState.Running:
                return  # stopped meanwhile: PowerShell drops what a stopped pipeline writes
            write(*args, **kwargs)
            self.server.flush()

    def output(self, *values: Any) -> None:
        for value in values:
            self._emit(self.pipeline.write_output, value)

    def error(self, message: str, *, category: ErrorCategory = ErrorCategory.NotSpecified,
              fqid: str = "", target: Any = None, exception: str = "System.Exception",
              position: str = "") -> None:
        exc = NETException(Message=message)
        exc.PSObject.type_names = [exception, "System.Exception", "System.Object"]
        info = None
        if position:
            info = InvocationInfo(PositionMessage=position, Line=position.splitlines()[0],
                                  ScriptLineNumber=1, OffsetInLine=1, HistoryId=1,
                                  PipelineLength=1, PipelinePosition=1, ExpectingInput=False,
                                  InvocationName="", BoundParameters={}, UnboundArguments=[],
                                  CommandOrigin=CommandOrigin.Runspace, PSScriptRoot="", PSCommandPath="",
                                  ScriptName="")
        self._emit(self.pipeline.write_error, exc, ErrorCategoryInfo(Category=category),
                   target_object=target, fully_qualified_error_id=fqid, invocation_info=info)

    def warning(self, message: str) -> None:
        self._emit(self.pipeline.write_warning, message)

    def verbose(self, message: str) -> None:
        self._emit(self.pipeline.write_verbose, message)

    def debug(self, message: str) -> None:
        self._emit(self.pipeline.write_debug, message)

    def information(self, data: Any, source: str = "psrp-test") -> None:
        self._emit(self.pipeline.write_information, data, source)

    def progress(self, activity: str, status: str, percent: int = -1, activity_id: int = 1) -> None:
        self._emit(self.pipeline.write_progress, activity, activity_id, status,
                   percent_complete=percent)

    def fail(self, message: str) -> None:
        """A terminating error: the pipeline ends Failed with this reason."""
        from .server import terminating

        with self.server.lock:
            if self.pipeline.state == PSInvocationState.Running:
                self.pipeline._change_state(PSInvocationState.Failed, error=terminating(message))
                self.server.flush()

    def sleep(self, seconds: float) -> bool:
        """Wait, unless the pipeline is stopped first (then False)."""
        return not self.stopped.wait(seconds)

    @staticmethod
    def reveal(value: Any) -> Any:
        """A PSCredential's (user, password), a SecureString's text; anything else as is."""
        if isinstance(value, PSCredential):
            return str(value.UserName), str(value.Password.decrypt())
        if isinstance(value, PSSecureString):
            return str(value.decrypt())
        return value


Handler = Callable[[Context], None]
