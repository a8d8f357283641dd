"""The hypervisor interface: VM lifecycle the plugin drives, whatever runs the VM.

Hyper-V implements it in :mod:`.hyperv.lifecycle` (host PowerShell templates); a QEMU backend
can implement the same methods with libvirt/QMP and the guest agent (its ``VM`` a domain name),
and the plugin's markers and options work unchanged.

>>> VMStatus("Saved").stopped, VMStatus("Running", "OK").ready
(True, True)
"""

from __future__ import annotations

import dataclasses
from typing import Protocol, TypeVar

from ..credentials.secret import Credential

#: states in which a VM will not become ready by waiting: someone must start (or resume) it
STOPPED = ("Off", "Saved", "Paused")

VM_contra = TypeVar("VM_contra", contravariant=True)


@dataclasses.dataclass(frozen=True)
class VMStatus:
    """What the hypervisor says of a VM: its state and its heartbeat (guest alive) status."""

    state: str
    heartbeat: str = ""

    @property
    def stopped(self) -> bool:
        return self.state in STOPPED

    @property
    def ready(self) -> bool:
        """Running with a heartbeat; the guest's remoting still needs a probe."""
        return self.state == "Running" and self.heartbeat == "OK"


class Hypervisor(Protocol[VM_contra]):
    """VM lifecycle on one hypervisor host. Every call is bounded; errors are
    :class:`~pytest_psdirect.errors.PSDirectError` subclasses naming the VM."""

    def state(self, vm: VM_contra) -> VMStatus:
        """The VM's state and heartbeat."""

    def start(self, vm: VM_contra) -> None:
        """Start (or resume) the VM; a running VM is left alone."""

    def stop(self, vm: VM_contra, *, force: bool = False) -> None:
        """Shut the guest down, or power it off with ``force``."""

    def wait_ready(self, vm: VM_contra, timeout: float, credential: Credential | None) -> float:
        """Wait until the heartbeat is OK and a guest probe answers (with ``credential``; None:
        the heartbeat alone); seconds waited.
        Raises VMReadyTimeout after ``timeout``, VMNotRunning if the VM is stopped."""

    def checkpoint(self, vm: VM_contra, name: str) -> None:
        """Take a checkpoint (snapshot / overlay) named ``name``."""

    def restore(self, vm: VM_contra, name: str) -> None:
        """Go back to checkpoint ``name`` (the VM may be left stopped: start it after)."""

    def remove_checkpoint(self, vm: VM_contra, name: str) -> None:
        """Delete checkpoint ``name``."""

    def close(self) -> None:
        """Release the connection to the host."""
