"""What a PowerShell invocation returns, as plain Python values, whatever engine ran it.

Engines (OutOfProc over psrpcore, WSMan over pypsrp) convert their own objects into these, so
tests read the same ``PSResult`` from a Hyper-V guest, a WinRM host or ``pwsh`` over SSH.

Example::

    >>> svc = PSObjectDict({"Name": "W3SVC", "Status": "Running"},
    ...                    type_names=("System.ServiceProcess.ServiceController", "System.Object"))
    >>> svc["Status"], svc.type_names[0]
    ('Running', 'System.ServiceProcess.ServiceController')
    >>> err = ErrorRecord("Cannot find path 'C:\\\\x'.", category="ObjectNotFound",
    ...     fully_qualified_error_id="PathNotFound,Microsoft.PowerShell.Commands.GetItemCommand")
    >>> print(err)
    Cannot find path 'C:\\x'. (ObjectNotFound; PathNotFound,Microsoft.PowerShell.Commands.GetItemCommand)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


class PSObjectDict(dict[str, Any]):
    """A PSObject's properties, in order, with its PowerShell type names kept.

    ``type_names`` is the object's ``PSTypeNames`` (most derived first); ``to_string`` is what
    PowerShell's ``ToString()`` gave for it, when the engine sent it.
    """

    def __init__(self, properties: Mapping[str, Any] | Iterable[tuple[str, Any]] = (), *,
                 type_names: tuple[str, ...] = (), to_string: str | None = None) -> None:
        super().__init__(properties)
        self.type_names = type_names
        self.to_string = to_string

    def __repr__(self) -> str:
        kind = self.type_names[0] if self.type_names else "PSObject"
        return f"<{kind} {dict.__repr__(self)}>"


@dataclass(frozen=True)
class ErrorRecord:
    """One record of PowerShell's error stream.

    ``category`` is the ErrorCategory name (``ObjectNotFound``...), ``fully_qualified_error_id``
    the FullyQualifiedErrorId, ``script_position`` the PositionMessage (where in the script; the
    ScriptStackTrace when PowerShell sent no PositionMessage),
    ``exception_type`` the .NET type of the exception behind it.
    """

    message: str
    category: str = "NotSpecified"
    fully_qualified_error_id: str = ""
    target_object: Any = None
    script_position: str = ""
    exception_type: str = ""

    def __str__(self) -> str:
        where = f"\n{self.script_position}" if self.script_position else ""
        return f"{self.message} ({self.category}; {self.fully_qualified_error_id}){where}"


@dataclass(frozen=True)
class ProgressRecord:
    """One record of the progress stream (``Write-Progress``)."""

    activity: str
    status: str = ""
    percent_complete: int = -1
    activity_id: int = 0


@dataclass(frozen=True)
class PSResult:
    """Output objects and every stream of one invocation.

    Remote errors are non-terminating, as with ``Invoke-Command``: they are collected in
    ``errors`` and ``had_errors`` is True; ``target.run_ps(..., check=True)`` raises instead.
    """

    output: list[Any] = field(default_factory=list)
    errors: list[ErrorRecord] = field(default_factory=list)
    warning: list[str] = field(default_factory=list)
    verbose: list[str] = field(default_factory=list)
    debug: list[str] = field(default_factory=list)
    information: list[Any] = field(default_factory=list)
    progress: list[ProgressRecord] = field(default_factory=list)
    had_errors: bool = False
    script: str = ""
    target: str = ""
    duration: float = 0.0

    def __repr__(self) -> str:
        streams = ", ".join(f"{name}={len(getattr(self, name))}" for name in
                            ("errors", "warning", "verbose", "debug", "information", "progress")
                            if getattr(self, name))
        return (f"PSResult(output={self.output!r}"[:300] + (f", {streams}" if streams else "")
                + f", had_errors={self.had_errors}, duration={self.duration:.4f})")
