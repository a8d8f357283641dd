"""The PowerShell Direct troubleshooting list, as code: an error record from the Hyper-V host ->
the exception naming its documented causes and fix (Microsoft's "Manage Windows virtual machines
with PowerShell Direct", section Troubleshooting).

>>> from pytest_psdirect.powershell.result import ErrorRecord
>>> err = classify(ErrorRecord("The credential is invalid."), target="vm://web01")
>>> type(err).__name__, err.message
('GuestAuthenticationFailed', 'The credential is invalid.')
"""

from __future__ import annotations

from ...errors import (
    ConnectFailed,
    GuestAuthenticationFailed,
    GuestNotReady,
    HyperVHostTooOld,
    PSDirectError,
    RunAsAdministratorNotForVMs,
    VMNotFound,
)
from ...powershell.result import ErrorRecord

#: (text or FullyQualifiedErrorId fragment, exception class), first match wins
KNOWN: tuple[tuple[str, type[PSDirectError]], ...] = (
    ("parameter does not resolve to any virtual machine", VMNotFound),
    ("The credential is invalid", GuestAuthenticationFailed),
    ("A remote session might have ended", GuestNotReady),
    ("A parameter cannot be found that matches parameter name 'VMName'", HyperVHostTooOld),
    ("A parameter cannot be found that matches parameter name 'VMId'", HyperVHostTooOld),
    ("NamedParameterNotFound,Microsoft.PowerShell.Commands.NewPSSessionCommand", HyperVHostTooOld),
    ("Parameter set cannot be resolved using the specified named parameters", RunAsAdministratorNotForVMs),
)


def classify(record: ErrorRecord, *, target: str) -> PSDirectError:
    """The documented error ``record`` stands for; :class:`ConnectFailed` for anything else."""
    for fragment, cls in KNOWN:
        if fragment in record.message or fragment in record.fully_qualified_error_id:
            return cls(record.message, target=target)
    return ConnectFailed(f"New-PSSession on the Hyper-V host failed: {record.message}",
                         target=target, hint="run psdirect's host script by hand on the host "
                         "(New-PSSession -VMName ... -Credential (Get-Credential)) to see more")
