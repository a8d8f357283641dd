"""PowerShell: invocations as data, engines (OutOfProc, WSMan) and the results they return."""

from .command import Invocation, build_invocation
from .engine import PSEngine
from .result import ErrorRecord, ProgressRecord, PSObjectDict, PSResult

__all__ = ["ErrorRecord", "Invocation", "PSEngine", "PSObjectDict", "PSResult", "ProgressRecord",
           "build_invocation"]
