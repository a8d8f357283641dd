"""Handlers of a simulated Hyper-V host, one per template pytest-psdirect sends to a host.

Loaded by tests/psrp_server.py through ``PSRP_SERVER_HANDLERS``; configured by the JSON file in
``PSDIRECT_HYPERV_SIM`` (see sim.py): the VM table (name, id, state, the guest account), a
directory for the host's temporary files and each guest's disk, and an event log (JSON lines)
of New-PSSession / Invoke-Command / Copy-Item / Remove-PSSession, for the tests to count.

Behaviour and messages follow Microsoft's PowerShell Direct documentation (troubleshooting):
New-PSSession succeeds only for a known, running VM with the guest's credential; an unknown VM is
"The input VMName parameter does not resolve to any virtual machine.", a VM that is off "An error
has occurred which Windows PowerShell cannot handle. A remote session might have ended.", a wrong
password "The credential is invalid.". Invoke-Command runs the script in a tiny guest emulation
(scripted answers keyed by markers in the script, variables kept per session). Scripts nobody
handles are refused, also the test server's own (psrp-test:*, target.run's RUN_NATIVE) on the host.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from psrpcore.types import ErrorCategory, PSCustomObject
from psrpserver.context import Context, Handler

from hyperv_sim import lifecycle

NEW = "Microsoft.PowerShell.Commands.NewPSSessionCommand"
NOT_READY = ("An error has occurred which Windows PowerShell cannot handle. A remote session "
             "might have ended.")


def config() -> dict[str, Any]:
    with open(os.environ["PSDIRECT_HYPERV_SIM"]) as f:
        return json.load(f)


def event(kind: str, **data: Any) -> None:
    line = json.dumps({"event": kind, "pid": os.getpid(), **data}) + "\n"
    with open(os.path.join(config()["dir"], "events.jsonl"), "a") as f:
        f.write(line)


def guest_root(vm: dict[str, Any]) -> str:
    root = os.path.join(config()["dir"], "guests", vm["id"])
    os.makedirs(root, exist_ok=True)
    return root


def guest_path(vm: dict[str, Any], path: str) -> str:
    """C:\\data\\x.txt -> <guest root>/C/data/x.txt (the guest's disk in a directory)."""
    parts = [p for p in path.replace("\\", "/").replace(":", "").split("/") if p]
    if ".." in parts:
        raise ValueError(f"path {path!r} leaves the guest")
    return os.path.join(guest_root(vm), *parts)


def _sessions(ctx: Context) -> dict[str, dict[str, Any]]:
    return ctx.state.setdefault("sessions", {})


def _find_vm(name: str, vm_id: str) -> dict[str, Any] | None:
    for vm in lifecycle.all_vms():
        if (vm_id and vm["id"].lower() == vm_id.lower()) or (not vm_id and vm["name"] == name):
            return vm
    return None


def check_session(ctx: Context, vm: dict[str, Any] | None, name: str, vm_id: str, cred: Any) -> bool:
    """New-PSSession's checks, in Hyper-V's order; writes the documented error when one fails."""
    if config().get("host_too_old"):
        ctx.error(f"A parameter cannot be found that matches parameter name "
                  f"'{'VMId' if vm_id else 'VMName'}'.", category=ErrorCategory.InvalidArgument,
                  fqid=f"NamedParameterNotFound,{NEW}",
                  exception="System.Management.Automation.ParameterBindingException")
        return False
    if vm is None:
        kind = "VMId" if vm_id else "VMName"
        ctx.error(f"The input {kind} parameter does not resolve to any virtual machine.",
                  category=ErrorCategory.InvalidArgument, fqid=f"CreateRemoteRunspaceForVMFailed,{NEW}",
                  target=vm_id or name, exception="System.ArgumentException")
        return False
    vm = lifecycle.current(vm)  # its state now (Start-VM, Restore-VMSnapshot... change it)
    if vm["state"] != "Running" or vm["heartbeat"] != "OK":  # off, or the guest still booting
        ctx.error(NOT_READY, category=ErrorCategory.OpenError, fqid=f"PSSessionOpenFailed,{NEW}",
                  exception="System.Management.Automation.Remoting.PSRemotingTransportException")
        return False
    user, password = ctx.reveal(cred) if cred is not None else (None, None)
    if (user, password) != (vm["username"], vm["password"]):
        ctx.error("The credential is invalid.", category=ErrorCategory.InvalidArgument,
                  fqid=f"CreateRemoteRunspaceForVMFailed,{NEW}",
                  exception="System.Management.Automation.Remoting.PSDirectException")
        return False
    time.sleep(float(config().get("session_cost", 0)))  # a modelled cost of opening a session
    return True


def container_open(ctx: Context) -> None:
    """New-PSSession -ContainerId [-RunAsAdministrator]: no credential; the guest account is
    ContainerAdministrator with -RunAsAdministrator, else ContainerUser (Windows containers'
    built-in accounts). The not-found/not-running texts are the simulator's (the docs give none)."""
    p = ctx.params
    cid = p["ContainerId"]
    event("new-pssession-attempt", container_id=cid)
    found = [c for c in config().get("containers", []) if c["id"] == cid]
    if not found:
        ctx.error(f"The input ContainerId {cid} does not exist, or the corresponding container is "
                  "not running.", category=ErrorCategory.InvalidArgument,
                  fqid=f"CreateRemoteRunspaceForContainerFailed,{NEW}", target=cid,
                  exception="System.ArgumentException")
        return
    if found[0]["state"] != "Running":
        ctx.error(NOT_READY, category=ErrorCategory.OpenError, fqid=f"PSSessionOpenFailed,{NEW}",
                  exception="System.Management.Automation.Remoting.PSRemotingTransportException")
        return
    user = "ContainerAdministrator" if p.get("RunAsAdministrator") else "ContainerUser"
    sessions = _sessions(ctx)
    sessions[p["Key"]] = {"vm": {"name": cid, "id": cid, "state": "Running", "container": True},
                          "vars": {}, "user": user}
    event("new-pssession", container_id=cid, key=p["Key"], user=user)
    host_temp = os.path.join(config()["dir"], "host-temp")
    os.makedirs(host_temp, exist_ok=True)
    ctx.output(PSCustomObject(Id=len(sessions), VMName="", VMId="", HostTemp=host_temp + os.sep))


def vm_open(ctx: Context) -> None:
    p = ctx.params
    if p.get("ContainerId"):
        container_open(ctx)
        return
    name, vm_id = p.get("VMName") or "", p.get("VMId") or ""
    event("new-pssession-attempt", vm_name=name, vm_id=vm_id)
    vm = _find_vm(name, vm_id)
    if not check_session(ctx, vm, name, vm_id, p.get("Credential")):
        return
    assert vm is not None
    sessions = _sessions(ctx)
    sessions[p["Key"]] = {"vm": vm, "vars": {}, "user": vm["username"],
                          "generation": lifecycle.current(vm)["generation"]}
    event("new-pssession", vm_name=name, vm_id=vm_id, key=p["Key"])
    host_temp = os.path.join(config()["dir"], "host-temp")
    os.makedirs(host_temp, exist_ok=True)
    ctx.output(PSCustomObject(Id=len(sessions), VMName=vm["name"], VMId=vm["id"],
                              HostTemp=host_temp + os.sep))


def _session(ctx: Context) -> dict[str, Any] | None:
    session = _sessions(ctx).get(ctx.params.get("Key") or "")
    if session is None:
        ctx.fail("psdirect: this host runspace holds no PowerShell Direct session for the target")
    return session


def guest(ctx: Context, session: dict[str, Any], code: str, args: list[Any],
          params: dict[str, Any]) -> None:
    """The guest: a few scripted answers, its variables kept in ``session['vars']``."""
    vm, variables = session["vm"], session["vars"]
    if "guest:set" in code:
        variables[params.get("Name", "p")] = params.get("Value")
    elif "guest:get" in code:
        ctx.output(variables.get(params.get("Name", "p")))
    elif "guest:whoami" in code or "psdirect:doctor-guest" in code:
        ctx.output(PSCustomObject(ComputerName=vm["name"], UserName=session["user"]))
    elif "guest:echo" in code:
        ctx.output(PSCustomObject(Args=list(args), Params=dict(params)))
    elif "guest:sleep" in code:
        if ctx.sleep(float(params.get("Seconds", 30))):
            ctx.output("woke")
    elif "guest:streams" in code:
        ctx.output("out")
        ctx.warning("guest warning")
        ctx.verbose("guest verbose")
        ctx.error("Cannot find path 'C:\\nope' because it does not exist.",
                  category=ErrorCategory.ObjectNotFound,
                  fqid="PathNotFound,Microsoft.PowerShell.Commands.GetItemCommand",
                  target="C:\\nope", exception="System.Management.Automation.ItemNotFoundException")
        ctx.output("after the error")
    elif "guest:throw" in code:  # terminating in the guest: non-terminating on the host
        ctx.output("before")
        ctx.error("guest failure", category=ErrorCategory.OperationStopped,
                  fqid="guest failure", exception="System.Management.Automation.RuntimeException")
    elif "System.Diagnostics.ProcessStartInfo" in code:  # target.run's RUN_NATIVE, in the guest
        proc = subprocess.run(["/bin/sh", "-c", params["Command"]], capture_output=True,
                              cwd=guest_root(vm), stdin=subprocess.DEVNULL, timeout=60)
        ctx.output(PSCustomObject(rc=proc.returncode, stdout=proc.stdout.decode(errors="replace"),
                                  stderr=proc.stderr.decode(errors="replace")))
    elif answer := _answer(vm, code):  # the VM's scripted answers (sim.py: HyperVSim.answer)
        for value in answer[1]:
            ctx.output(PSCustomObject(**value) if isinstance(value, dict) else value)
    else:
        ctx.error(f"The term '{code.strip()[:40]}' is not recognized as a name of a cmdlet, "
                  "function, script file, or executable program.",
                  category=ErrorCategory.ObjectNotFound, fqid="CommandNotFoundException",
                  exception="System.Management.Automation.CommandNotFoundException")


def _answer(vm: dict[str, Any], code: str) -> tuple[str, list[Any]] | None:
    """The first of the VM's ``answers`` whose fragment the script contains."""
    for fragment, values in vm.get("answers", []):
        if fragment in code:
            return fragment, values
    return None


def vm_invoke(ctx: Context) -> None:
    session = _session(ctx)
    if session is None:
        return
    event("invoke-command", key=ctx.params["Key"])
    p = ctx.params
    now = {"state": "Running", "generation": 0} if session["vm"].get("container") else \
        lifecycle.current(session["vm"])
    if now["state"] != "Running" or now["generation"] != session.get("generation", 0):
        session["broken"] = True  # stopped, restored to a checkpoint or rebooted since New-PSSession
    if session.get("broken"):  # the guest's vmicvmsession hung or the VM went away
        ctx.error(f"Because the session state for session Session{len(_sessions(ctx))}, "
                  f"{session['vm']['name']}, is not equal to Open, you cannot run a command in "
                  "the session.  The session state is Broken.",
                  category=ErrorCategory.InvalidOperation,
                  fqid="InvalidSessionState,Microsoft.PowerShell.Commands.InvokeCommandCommand",
                  exception="System.InvalidOperationException")
        return
    if "guest:hang" in p["Code"]:
        session["broken"] = True
        ctx.error(NOT_READY, category=ErrorCategory.OperationStopped,
                  fqid="JobFailure", exception="System.Management.Automation.Remoting."
                  "PSRemotingTransportException")
        return
    guest(ctx, session, p["Code"], list(p.get("ArgumentList") or []),
          dict(p.get("Parameters") or {}))


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def vm_copy_to(ctx: Context) -> None:
    session = _session(ctx)
    if session is None:
        return
    p = ctx.params
    event("copy-item-to-session", key=p["Key"])
    try:
        dest = guest_path(session["vm"], p["GuestPath"])
        part = f"{dest}.psdirect-{p['Token']}.part"
        try:
            shutil.copyfile(p["HostPath"], part)
        except OSError as exc:
            ctx.fail(f"Could not find a part of the path '{p['GuestPath']}'. ({exc.strerror})")
            return
        actual = _sha256(part)
        if actual != p["Sha256"]:
            os.unlink(part)
            ctx.error(f"SHA-256 of the copy in the VM is {actual}, expected {p['Sha256']}",
                      category=ErrorCategory.OperationStopped, fqid="ScriptHalted")
            return
        os.replace(part, dest)
    finally:
        if os.path.exists(p["HostPath"]):
            os.unlink(p["HostPath"])


def vm_copy_from(ctx: Context) -> None:
    session = _session(ctx)
    if session is None:
        return
    p = ctx.params
    event("copy-item-from-session", key=p["Key"])
    src = guest_path(session["vm"], p["GuestPath"])
    if not os.path.isfile(src):
        ctx.fail(f"Cannot find path '{p['GuestPath']}' because it does not exist.")
        return
    shutil.copyfile(src, p["HostPath"])
    ctx.output(PSCustomObject(Sha256=_sha256(src)))


def vm_close(ctx: Context) -> None:
    if _sessions(ctx).pop(ctx.params["Key"], None) is not None:
        event("remove-pssession", key=ctx.params["Key"])


def host_remove(ctx: Context) -> None:
    path = os.path.abspath(ctx.params["Path"])
    if path.startswith(os.path.join(config()["dir"], "host-temp")) and os.path.exists(path):
        os.unlink(path)


def naive_invoke(ctx: Context) -> None:
    """``Invoke-Command -VMName X -Credential C -ScriptBlock {...}``: a session per command."""
    p = ctx.params
    vm = _find_vm(p.get("VMName") or "", "")
    event("new-pssession-attempt", vm_name=p.get("VMName"), vm_id="", naive=True)
    if not check_session(ctx, vm, p.get("VMName") or "", "", p.get("Credential")):
        return
    assert vm is not None
    event("new-pssession", vm_name=vm["name"], vm_id="", naive=True)
    event("invoke-command", naive=True)
    guest(ctx, {"vm": vm, "vars": {}, "user": vm["username"]}, p["Code"],
          list(p.get("ArgumentList") or []), dict(p.get("Parameters") or {}))
    event("remove-pssession", naive=True)


def refuse(ctx: Context) -> None:
    ctx.error("the simulated Hyper-V host refuses scripts that are not pytest-psdirect's host "
              "templates", category=ErrorCategory.PermissionDenied, fqid="SimRefused")


def doctor_host(ctx: Context) -> None:
    """What a host reports of itself: Server 2022 with Windows PowerShell 5.1, or (host_too_old)
    Server 2012 R2 with PowerShell 4 and no -VMName."""
    old = bool(config().get("host_too_old"))
    ctx.output(PSCustomObject(OSBuild=9600 if old else 20348, PSMajor=4 if old else 5,
                              HasVMName=not old))


def doctor_vm(ctx: Context) -> None:
    """Get-VM (by name or id) and its Heartbeat integration service, as Hyper-V answers."""
    p = ctx.params
    name, vm_id = p.get("VMName") or "", p.get("VMId") or ""
    vm = _find_vm(name, vm_id)
    if vm is None:
        what = f"with ID '{vm_id}'" if vm_id else f"with name '{name}'"
        ctx.error(f"Hyper-V was unable to find a virtual machine {what}.",
                  category=ErrorCategory.InvalidArgument,
                  fqid="InvalidParameter,Microsoft.HyperV.PowerShell.Commands.GetVM",
                  target=vm_id or name, exception="Microsoft.HyperV.PowerShell.VirtualizationException")
        return
    running = vm["state"] == "Running"
    beat = vm.get("heartbeat", "OK") if running else ""
    ctx.output(PSCustomObject(Name=vm["name"], Id=vm["id"], State=vm["state"], Heartbeat=beat))


HANDLERS: dict[str, Handler] = {
    "# psdirect:doctor-host": doctor_host,
    "# psdirect:doctor-vm": doctor_vm,
    "# psdirect:vm-open": vm_open,
    "# psdirect:vm-invoke": vm_invoke,
    "# psdirect:vm-copy-to": vm_copy_to,
    "# psdirect:vm-copy-from": vm_copy_from,
    "# psdirect:vm-close": vm_close,
    "# psdirect:host-remove": host_remove,
    "# psdirect:vm-state": lifecycle.vm_state,
    "# psdirect:vm-start": lifecycle.vm_start,
    "# psdirect:vm-stop": lifecycle.vm_stop,
    "# psdirect:vm-probe": lifecycle.vm_probe,
    "# psdirect:vm-checkpoint": lifecycle.vm_checkpoint,
    "# psdirect:vm-restore": lifecycle.vm_restore,
    "# psdirect:vm-remove-checkpoint": lifecycle.vm_remove_checkpoint,
    "# psdirect:vm-provision": lifecycle.vm_provision,
    "# psdirect:vm-destroy": lifecycle.vm_destroy,
    "# psdirect-bench:naive-invoke": naive_invoke,
    # the test server's own scripts are not a Hyper-V host's: refuse them here
    "psrp-test:": refuse,
    "System.Diagnostics.ProcessStartInfo": refuse,
}
