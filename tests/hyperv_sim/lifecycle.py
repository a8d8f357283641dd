"""The simulated Hyper-V host's VM lifecycle: handlers for pytest-psdirect's vm-state, vm-start,
vm-stop, vm-probe, vm-checkpoint, vm-restore and vm-remove-checkpoint templates.

The VMs' changing state lives in ``vmstate.json`` next to ``sim.json`` (every host process sees
it; updates hold a lock): state, when the guest started booting, a boot generation (a restore or
a stop ends every PowerShell Direct session opened before: they go Broken, as on Hyper-V) and the
checkpoints. A checkpoint copies the guest's disk (its directory) and a restore puts that copy
back, so a test can prove a restore happened from what the guest holds afterwards.

Documented behaviour modelled: Start-VM/Stop-VM on a VM already in that state is a no-op with the
warning "The virtual machine is already in the specified state."; Resume-VM for Paused; a VM that
booted has "No Contact" on its Heartbeat integration service for ``boot_seconds`` (a VM option),
then "OK"; PowerShell Direct fails with "A remote session might have ended." until then; after
Restore-VMSnapshot a production checkpoint leaves the VM Off, a standard checkpoint of a running VM
leaves it Saved; unknown VMs and checkpoints fail with Hyper-V's "unable to find" messages.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from typing import Any

from psrpcore.types import ErrorCategory, PSCustomObject
from psrpserver.context import Context

ALREADY = "The virtual machine is already in the specified state."


def _config() -> dict[str, Any]:
    with open(os.environ["PSDIRECT_HYPERV_SIM"]) as f:
        data: dict[str, Any] = json.load(f)
    return data


def _event(kind: str, **data: Any) -> None:
    with open(os.path.join(_config()["dir"], "events.jsonl"), "a") as f:
        f.write(json.dumps({"event": kind, "pid": os.getpid(), **data}) + "\n")


def all_vms() -> list[dict[str, Any]]:
    """sim.json's VMs and those vm-provision made (provisioned.json)."""
    vms: list[dict[str, Any]] = list(_config()["vms"])
    path = os.path.join(_config()["dir"], "provisioned.json")
    if os.path.exists(path):
        with open(path) as f:
            vms += json.load(f)
    return vms


def _save_provisioned(vms: list[dict[str, Any]]) -> None:
    path = os.path.join(_config()["dir"], "provisioned.json")
    with open(path + ".tmp", "w") as f:
        json.dump(vms, f)
    os.replace(path + ".tmp", path)


@contextlib.contextmanager
def states() -> Iterator[dict[str, dict[str, Any]]]:
    """The mutable VM table (by id), read and written back under a lock."""
    directory = _config()["dir"]
    with open(os.path.join(directory, "vmstate.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = os.path.join(directory, "vmstate.json")
        table: dict[str, dict[str, Any]] = {}
        if os.path.exists(path):
            with open(path) as f:
                table = json.load(f)
        for vm in all_vms():
            table.setdefault(vm["id"], {"state": vm["state"], "started_at": 0.0,
                                        "generation": 0, "checkpoints": []})
        yield table
        with open(path + ".tmp", "w") as f:
            json.dump(table, f)
        os.replace(path + ".tmp", path)


def current(vm: dict[str, Any]) -> dict[str, Any]:
    """``vm`` (a sim.json row) with its current state, heartbeat and boot generation."""
    with states() as table:
        row = table[vm["id"]]
    booting = time.time() - row["started_at"] < float(vm.get("boot_seconds", 0))
    heartbeat = ("No Contact" if row["state"] != "Running" or booting
                 else vm.get("heartbeat", "OK"))
    return {**vm, "state": row["state"], "heartbeat": heartbeat, "generation": row["generation"]}


def _lookup(ctx: Context) -> dict[str, Any] | None:
    """Get-VM -Name/-Id: the VM, or Hyper-V's error."""
    name, vm_id = ctx.params.get("VMName") or "", ctx.params.get("VMId") or ""
    vm = _lookup_quiet(ctx)
    if vm is not None:
        return vm
    what = f'id "{vm_id}"' if vm_id else f'name "{name}"'
    ctx.error(f"Hyper-V was unable to find a virtual machine with {what}.",
              category=ErrorCategory.InvalidArgument,
              fqid="InvalidParameter,Microsoft.HyperV.PowerShell.Commands.GetVM",
              target=vm_id or name, exception="Microsoft.HyperV.PowerShell.VirtualizationException")
    return None


def vm_state(ctx: Context) -> None:
    vm = _lookup(ctx)
    if vm is None:
        return
    now = current(vm)
    _event("get-vm", vm=vm["name"], state=now["state"], heartbeat=now["heartbeat"])
    ctx.output(PSCustomObject(Name=vm["name"], Id=vm["id"], State=now["state"],
                              Heartbeat=now["heartbeat"]))


def vm_start(ctx: Context) -> None:
    vm = _lookup(ctx)
    if vm is None:
        return
    with states() as table:
        row = table[vm["id"]]
        if row["state"] == "Running":
            ctx.warning(ALREADY)
        elif row["state"] == "Paused":  # Resume-VM: the guest carries on where it was
            row["state"] = "Running"
        else:  # Off: boots; Saved: resumes from its saved memory (the guest is not rebooted)
            if row["state"] == "Off":
                row["started_at"] = time.time()
            row["state"] = "Running"
            row["generation"] += 1
        state = row["state"]
    _event("start-vm", vm=vm["name"])
    ctx.output(PSCustomObject(State=state))


def vm_stop(ctx: Context) -> None:
    vm = _lookup(ctx)
    if vm is None:
        return
    with states() as table:
        row = table[vm["id"]]
        if row["state"] == "Off":
            ctx.warning(ALREADY)
        else:
            row["state"] = "Off"
            row["generation"] += 1
    _event("stop-vm", vm=vm["name"], turn_off=bool(ctx.params.get("TurnOff")))
    ctx.output(PSCustomObject(State="Off"))


def vm_probe(ctx: Context) -> None:
    """Invoke-Command -VMName/-VMId -Credential: New-PSSession's checks, then one answer."""
    from hyperv_sim.handlers import check_session

    vm = _lookup_quiet(ctx)
    _event("probe", vm=(vm or {}).get("name"))
    if check_session(ctx, vm, ctx.params.get("VMName") or "", ctx.params.get("VMId") or "",
                     ctx.params.get("Credential")):
        assert vm is not None
        ctx.output(PSCustomObject(ComputerName=vm["name"]))


def _lookup_quiet(ctx: Context) -> dict[str, Any] | None:
    name, vm_id = ctx.params.get("VMName") or "", ctx.params.get("VMId") or ""
    for vm in all_vms():
        if (vm_id and vm["id"].lower() == vm_id.lower()) or (not vm_id and vm["name"] == name):
            return vm
    return None


def _checkpoints_dir(vm: dict[str, Any]) -> str:
    return os.path.join(_config()["dir"], "checkpoints", vm["id"])


def _guest_dir(vm: dict[str, Any]) -> str:
    path = os.path.join(_config()["dir"], "guests", vm["id"])
    os.makedirs(path, exist_ok=True)
    return path


def vm_checkpoint(ctx: Context) -> None:
    vm = _lookup(ctx)
    if vm is None:
        return
    cp_id = str(uuid.uuid4())
    shutil.copytree(_guest_dir(vm), os.path.join(_checkpoints_dir(vm), cp_id))
    with states() as table:
        row = table[vm["id"]]
        row["checkpoints"].append({"name": ctx.params["Name"], "id": cp_id, "state": row["state"]})
    _event("checkpoint-vm", vm=vm["name"], name=ctx.params["Name"])
    ctx.output(PSCustomObject(Name=ctx.params["Name"], Id=cp_id))


def _not_found(ctx: Context, vm: dict[str, Any], cmdlet: str) -> None:
    ctx.error(f"Hyper-V was unable to find a checkpoint with name \"{ctx.params['Name']}\".",
              category=ErrorCategory.InvalidArgument,
              fqid=f"InvalidParameter,Microsoft.HyperV.PowerShell.Commands.{cmdlet}",
              target=vm["name"], exception="Microsoft.HyperV.PowerShell.VirtualizationException")


def vm_restore(ctx: Context) -> None:
    vm = _lookup(ctx)
    if vm is None:
        return
    with states() as table:
        row = table[vm["id"]]
        found = [c for c in row["checkpoints"] if c["name"].lower() == ctx.params["Name"].lower()]
        if not found:
            _not_found(ctx, vm, "RestoreVMSnapshot")
            return
        cp = found[-1]
        guest = _guest_dir(vm)
        shutil.rmtree(guest)
        shutil.copytree(os.path.join(_checkpoints_dir(vm), cp["id"]), guest)
        standard = vm.get("checkpoint_type") == "Standard"
        row["state"] = ("Saved" if cp["state"] == "Running" else cp["state"]) if standard else "Off"
        row["generation"] += 1  # the guest's sessions are gone
        state = row["state"]
    _event("restore-vmsnapshot", vm=vm["name"], name=ctx.params["Name"], state=state)
    ctx.output(PSCustomObject(State=state))


def vm_remove_checkpoint(ctx: Context) -> None:
    vm = _lookup(ctx)
    if vm is None:
        return
    with states() as table:
        row = table[vm["id"]]
        keep = [c for c in row["checkpoints"] if c["name"].lower() != ctx.params["Name"].lower()]
        gone = [c for c in row["checkpoints"] if c not in keep]
        if not gone:
            _not_found(ctx, vm, "RemoveVMSnapshot")
            return
        row["checkpoints"] = keep
    for cp in gone:
        shutil.rmtree(os.path.join(_checkpoints_dir(vm), cp["id"]), ignore_errors=True)
    _event("remove-vmsnapshot", vm=vm["name"], name=ctx.params["Name"])


def vm_provision(ctx: Context) -> None:
    """New-VHD -Differencing + New-VM: an Off VM whose disk starts as the template's files."""
    p = ctx.params
    with states():  # the lock: one provisioning at a time
        if any(vm["name"].lower() == p["Name"].lower() for vm in all_vms()):
            ctx.error(f"psdirect: a VM named '{p['Name']}' already exists on this host",
                      category=ErrorCategory.ResourceExists, fqid="Microsoft.PowerShell.Commands."
                      "WriteErrorException")
            return
        template = _config().get("templates", {}).get(p["TemplatePath"])
        if template is None:
            ctx.error(f"Failed to get the disk information. The system cannot find the file "
                      f"specified. ({p['TemplatePath']})", category=ErrorCategory.ObjectNotFound,
                      fqid="ObjectNotFound,Microsoft.Vhd.PowerShell.Cmdlets.NewVhd",
                      exception="Microsoft.HyperV.PowerShell.VirtualizationException")
            return
        vm = {"name": p["Name"], "id": str(uuid.uuid4()), "state": "Off",
              "username": template["username"], "password": template["password"],
              "boot_seconds": template.get("boot_seconds", 0), "memory": p["MemoryBytes"],
              "switch": p["SwitchName"], "generation": p["Generation"]}
        disk = os.path.join(_config()["dir"], "vhd", f"psdirect-{uuid.uuid4().hex}.vhdx")
        os.makedirs(os.path.dirname(disk), exist_ok=True)
        with open(disk, "w") as f:
            f.write(f"differencing disk, parent {p['TemplatePath']}\n")
        guest = _guest_dir(vm)
        with open(os.path.join(guest, "provisioned-from.txt"), "w") as f:
            f.write(p["TemplatePath"] + "\n")
        _save_provisioned([v for v in all_vms() if v not in _config()["vms"]] + [vm])
    _event("new-vm", vm=vm["name"], template=p["TemplatePath"], memory=p["MemoryBytes"],
           switch=p["SwitchName"])
    ctx.output(PSCustomObject(Id=vm["id"], Name=vm["name"], VhdPath=disk))


def vm_destroy(ctx: Context) -> None:
    p = ctx.params
    with states() as table:
        made = [v for v in all_vms() if v not in _config()["vms"]]
        vm = next((v for v in made if v["id"] == p["VMId"]), None)
        if vm is None:
            return
        _save_provisioned([v for v in made if v is not vm])
        table.pop(vm["id"], None)
    shutil.rmtree(_guest_dir(vm), ignore_errors=True)
    shutil.rmtree(_checkpoints_dir(vm), ignore_errors=True)
    if p.get("VhdPath") and os.path.exists(p["VhdPath"]):
        os.unlink(p["VhdPath"])
    _event("remove-vm", vm=vm["name"])
