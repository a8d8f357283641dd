"""VM lifecycle on a Hyper-V host: :class:`HyperVHost` implements
:class:`~pytest_psdirect.hypervisors.base.Hypervisor` over a PowerShell session to the host.

Each step is one host template (``templates/vm-*.ps1``: Get-VM with Get-VMIntegrationService,
Start-VM/Resume-VM, Stop-VM, Invoke-Command -VMName as the readiness probe, Checkpoint-VM,
Restore-VMSnapshot, Remove-VMSnapshot), values passed as parameters only, each call bounded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ...credentials.secret import Credential
from ...errors import (
    CheckpointNotFound,
    GuestNotReady,
    PSDirectError,
    VMLifecycleError,
    VMNotFound,
    VMNotRunning,
    VMReadyTimeout,
)
from ...powershell.result import ErrorRecord, PSResult
from ..base import ProvisionSpec, VMStatus
from .nested import HostSession, VMRef, host_invocation
from .troubleshoot import classify

log = logging.getLogger(__name__)

#: how often wait_ready looks again (seconds)
POLL = 1.0


def vm_label(vm: VMRef) -> str:
    return f"vmid://{vm.id}" if vm.id else f"vm://{vm.name}"


class HyperVHost:
    """The lifecycle of VMs on one Hyper-V host, through ``host`` (a PowerShell transport)."""

    def __init__(self, host: HostSession, *, timeout: float, poll: float = POLL,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.host = host
        self.timeout = timeout  # bounds each host call
        self.poll = poll
        self._clock = clock
        self._sleep = sleep
        self._opened = False

    def _call(self, name: str, vm: VMRef, *, timeout: float | None = None, by_vm: bool = True,
              **values: Any) -> PSResult:
        """Host template ``name`` with ``values`` (and the VM's VMName/VMId when ``by_vm``)."""
        if not self._opened or not self.host.alive:
            self.host.open()
            self._opened = True
        log.debug("%s: host template %s", vm_label(vm), name)
        try:
            params = {**vm.parameters(), **values} if by_vm else values
            return self.host.run_ps(host_invocation(name, **params),
                                    timeout=timeout or self.timeout)
        except PSDirectError as exc:
            exc.target = exc.target or vm_label(vm)
            raise

    def _checked(self, name: str, vm: VMRef, what: str, *, by_vm: bool = True,
                 **values: Any) -> PSResult:
        result = self._call(name, vm, by_vm=by_vm, **values)
        if result.errors:
            raise _lifecycle_error(result.errors[0], vm, what)
        return result

    def state(self, vm: VMRef) -> VMStatus:
        result = self._checked("vm-state", vm, "Get-VM")
        if not result.output:
            raise VMNotFound("Get-VM found no such VM on the Hyper-V host", target=vm_label(vm))
        info = result.output[-1]
        return VMStatus(str(info["State"]), str(info.get("Heartbeat") or ""))

    def start(self, vm: VMRef) -> None:
        log.info("%s: Start-VM", vm_label(vm))
        self._checked("vm-start", vm, "Start-VM")

    def stop(self, vm: VMRef, *, force: bool = False) -> None:
        log.info("%s: Stop-VM%s", vm_label(vm), " -TurnOff" if force else "")
        self._checked("vm-stop", vm, "Stop-VM", TurnOff=force)

    def probe(self, vm: VMRef, credential: Credential, *, timeout: float | None = None) -> None:
        """One PowerShell Direct round trip into the guest; the documented errors if not."""
        result = self._call("vm-probe", vm, timeout=timeout, Credential=credential)
        if result.errors:
            raise classify(result.errors[0], target=vm_label(vm))

    def wait_ready(self, vm: VMRef, timeout: float, credential: Credential | None) -> float:
        start = self._clock()
        deadline = start + timeout
        last = "no answer yet"
        while True:
            remaining = deadline - self._clock()
            status = self.state(vm)
            if status.stopped:
                raise VMNotRunning(f"the VM is {status.state} while waiting for it to be ready",
                                   target=vm_label(vm))
            if status.state != "Running":
                last = f"state {status.state}"
            elif status.heartbeat != "OK":
                last = f"Heartbeat integration service {status.heartbeat or 'not reporting'}"
            elif credential is None:  # no guest account to probe with: the heartbeat must do
                return self._clock() - start
            else:
                try:
                    self.probe(vm, credential, timeout=max(1.0, min(self.timeout, remaining)))
                except GuestNotReady as exc:
                    last = f"PowerShell Direct probe: {exc.message}"
                else:
                    waited = self._clock() - start
                    log.info("%s: ready after %.1fs", vm_label(vm), waited)
                    return waited
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise VMReadyTimeout(f"the VM was not ready after {timeout:g}s (last seen: {last})",
                                     target=vm_label(vm))
            self._sleep(min(self.poll, remaining))

    def checkpoint(self, vm: VMRef, name: str) -> None:
        log.info("%s: Checkpoint-VM -SnapshotName %s", vm_label(vm), name)
        self._checked("vm-checkpoint", vm, "Checkpoint-VM", Name=name)

    def restore(self, vm: VMRef, name: str) -> None:
        log.info("%s: Restore-VMSnapshot %s", vm_label(vm), name)
        self._checked("vm-restore", vm, "Restore-VMSnapshot", Name=name)

    def remove_checkpoint(self, vm: VMRef, name: str) -> None:
        log.info("%s: Remove-VMSnapshot %s", vm_label(vm), name)
        self._checked("vm-remove-checkpoint", vm, "Remove-VMSnapshot", Name=name)

    def provision(self, spec: ProvisionSpec) -> tuple[VMRef, str]:
        """New-VHD -Differencing on ``spec.template``, New-VM on it: the VM (by id), its disk."""
        log.info("vm://%s: New-VM on a differencing disk of %s", spec.name, spec.template)
        result = self._checked("vm-provision", VMRef(name=spec.name), "New-VM", by_vm=False,
                               Name=spec.name, TemplatePath=spec.template,
                               SwitchName=spec.switch, MemoryBytes=spec.memory,
                               Generation=spec.generation, ProcessorCount=spec.cpus)
        if not result.output:
            raise VMLifecycleError("New-VM returned no VM and no error",
                                   target=f"vm://{spec.name}")
        info = result.output[-1]
        return VMRef(name=str(info["Name"]), id=str(info["Id"])), str(info["VhdPath"])

    def destroy(self, vm: VMRef, disk: str) -> None:
        """Power off, Remove-VM, delete its differencing disk (the template stays)."""
        log.info("%s: Remove-VM and its disk", vm_label(vm))
        self._checked("vm-destroy", vm, "Remove-VM", by_vm=False, VMId=vm.id, VhdPath=disk)

    def close(self) -> None:
        self.host.close()
        self._opened = False


def _lifecycle_error(record: ErrorRecord, vm: VMRef, what: str) -> PSDirectError:
    """Hyper-V's error ``record`` from cmdlet ``what`` as the exception naming its cause."""
    label = vm_label(vm)
    if "unable to find a virtual machine" in record.message:
        return VMNotFound(record.message, target=label)
    if "unable to find a snapshot" in record.message or "unable to find a checkpoint" in record.message:
        return CheckpointNotFound(record.message, target=label,
                                  hint=f"list the VM's checkpoints on the host: Get-VMCheckpoint "
                                       f"-VMName '{vm.name}'" if vm.name else None)
    return VMLifecycleError(f"{what} failed on the Hyper-V host: {record.message}", target=label)
