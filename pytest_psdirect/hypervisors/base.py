"""The hypervisor interface: VM lifecycle the plugin drives, whatever runs the VM.

Hyper-V implements it in :mod:`.hyperv.lifecycle` (host PowerShell templates), QEMU in
:mod:`.qemu.machine` (VMs the plugin starts: QMP and the guest agent) and :mod:`.qemu.libvirt`
(libvirt domains: virsh); the plugin's markers and options work unchanged on all three.

>>> VMStatus("Saved").stopped, VMStatus("Running", "OK").ready
(True, True)
>>> parse_provision(r"template=D:\\tpl\\ws2022.vhdx,switch=Lab,memory=4G").memory
4294967296
"""

from __future__ import annotations

import dataclasses
from typing import Protocol, TypeVar

from ..credentials.secret import Credential
from ..settings import parse_size

#: states in which a VM will not become ready by waiting: someone must start (or resume) it
STOPPED = ("Off", "Saved", "Paused")

VM = TypeVar("VM")


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


@dataclasses.dataclass(frozen=True)
class ProvisionSpec:
    """A VM to make for the run from a template disk (a differencing disk / qcow2 overlay)."""

    template: str
    name: str
    switch: str = ""
    memory: int = 2 * 2**30
    generation: int = 2
    cpus: int = 0  # 0: the hypervisor's default


def parse_provision(text: str) -> ProvisionSpec:
    """``template=PATH[,name=NAME][,switch=NAME][,memory=SIZE][,generation=1|2][,cpus=N]``;
    ValueError naming the bad part. The default name is ``psdirect-<template file stem>``."""
    values: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in ("template", "name", "switch", "memory", "generation", "cpus"):
            raise ValueError(f"{part!r} in {text!r}: expected template=, name=, switch=, "
                             "memory=, generation= or cpus=")
        values[key] = value.strip()
    template = values.get("template", "")
    if not template:
        raise ValueError(f"{text!r}: template=PATH (the template VHD/VHDX on the host) is required")
    stem = template.replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    try:
        memory = parse_size(values.get("memory", "2G"), "memory")
        generation, cpus = int(values.get("generation", "2")), int(values.get("cpus", "0"))
    except ValueError as exc:
        raise ValueError(f"{text!r}: {exc}") from None
    if generation not in (1, 2) or cpus < 0:
        raise ValueError(f"{text!r}: generation is 1 or 2, cpus a count")
    return ProvisionSpec(template, values.get("name") or f"psdirect-{stem}",
                         values.get("switch", ""), memory, generation, cpus)


class Hypervisor(Protocol[VM]):
    """VM lifecycle on one hypervisor host. Every call is bounded; errors are
    :class:`~pytest_psdirect.errors.PSDirectError` subclasses naming the VM."""

    def state(self, vm: VM) -> VMStatus:
        """The VM's state and heartbeat."""

    def start(self, vm: VM) -> None:
        """Start (or resume) the VM; a running VM is left alone."""

    def stop(self, vm: VM, *, force: bool = False) -> None:
        """Shut the guest down, or power it off with ``force``."""

    def wait_ready(self, vm: VM, timeout: float, credential: Credential | None) -> float:
        """Wait until the heartbeat is OK and a guest probe answers (with ``credential``; None:
        the heartbeat alone); seconds waited.
        Raises VMReadyTimeout after ``timeout``, VMNotRunning if the VM is stopped."""

    def checkpoint(self, vm: VM, name: str) -> None:
        """Take a checkpoint (snapshot / overlay) named ``name``."""

    def restore(self, vm: VM, name: str) -> None:
        """Go back to checkpoint ``name`` (the VM may be left stopped: start it after)."""

    def remove_checkpoint(self, vm: VM, name: str) -> None:
        """Delete checkpoint ``name``."""

    def provision(self, spec: ProvisionSpec) -> tuple[VM, str]:
        """Make the VM ``spec`` describes; the VM and its own disk's path (for destroy)."""

    def destroy(self, vm: VM, disk: str) -> None:
        """Remove a VM that provision made, and its own disk (never the template)."""

    def close(self) -> None:
        """Release the connection to the host."""
