"""pytest-psdirect: infrastructure tests in plain pytest against SSH hosts, this machine and,
as their transports land, Hyper-V VMs (PowerShell Direct), WinRM hosts, containers and QEMU VMs.

Example::

    def test_sshd_running(target):
        assert target.run("pgrep -x sshd").rc == 0
"""

from .credentials.secret import Credential, Secret
from .errors import (
    AuthenticationFailed,
    CommandAborted,
    CommandFailed,
    CommandTimeout,
    ConnectFailed,
    CredentialError,
    FileTransferError,
    HostKeyMismatch,
    OutputTooLarge,
    PowerShellFailed,
    PSDirectError,
    SessionBroken,
    SessionLimitReached,
    TargetSpecError,
    TransportUnavailable,
    UnsupportedOperation,
)
from .pool import SessionPool
from .powershell.result import PSResult
from .results import CommandResult
from .sessions import TargetSession
from .settings import Settings, validate_timeout
from .targets import Target, parse_target
from .transports import Transport, TransportRegistry

__version__ = "0.1.0"

__all__ = [
    "AuthenticationFailed", "CommandAborted", "CommandFailed", "CommandResult", "CommandTimeout",
    "ConnectFailed", "Credential", "CredentialError", "FileTransferError", "HostKeyMismatch",
    "OutputTooLarge", "PowerShellFailed", "PSDirectError", "PSResult", "SessionBroken",
    "SessionLimitReached", "SessionPool", "Settings", "Target", "TargetSession", "TargetSpecError",
    "Transport", "TransportRegistry", "TransportUnavailable", "UnsupportedOperation", "Secret",
    "parse_target", "validate_timeout",
]
