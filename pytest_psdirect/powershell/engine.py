"""The contract of a PowerShell engine: one RunspacePool on one target, kept for the session.

Implementations: ``outofproc`` (psrpcore over any byte stream: ``pwsh -s``, the SSH
``powershell`` subsystem, later the Hyper-V socket) and ``wsman`` (pypsrp over WinRM). State
persists between invocations on one engine (``$p = ...`` in one call is visible in the next).
"""

from __future__ import annotations

import abc

from .command import Invocation
from .result import PSResult


class PSEngine(abc.ABC):
    """Opens a RunspacePool, runs invocations on it, closes it."""

    @abc.abstractmethod
    def open(self, timeout: float) -> None:
        """Open the pool; raise a :class:`~pytest_psdirect.errors.ConnectFailed` subclass."""

    @abc.abstractmethod
    def invoke(self, invocation: Invocation, *, timeout: float) -> PSResult:
        """Run one invocation; raise CommandTimeout past ``timeout`` (the pipeline is stopped)."""

    @property
    @abc.abstractmethod
    def alive(self) -> bool:
        """False once the pool is known to be broken or closed."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close the pool and what carries it; safe to call twice, bounded in time."""
