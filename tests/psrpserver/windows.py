"""A simulated Windows machine for the compliance resources' scripts (``PSRP_SERVER_HANDLERS``).

The machine's settings live in a JSON file named by ``PSRP_WINDOWS_STATE`` (the test writes it,
the set handlers change it, the test reads it back). Every answer has the shape Windows gives:

* ``Get-Service | Select-Object Name, Status, StartType``: a ``Selected.System.ServiceProcess.
  ServiceController`` object whose Status is a ``System.ServiceProcess.ServiceControllerStatus``
  and StartType a ``System.ServiceProcess.ServiceStartMode`` enum (values from the .NET
  reference: learn.microsoft.com/dotnet/api/system.serviceprocess.servicecontrollerstatus,
  .../servicestartmode); no output for an unknown service (-ErrorAction SilentlyContinue).
* ``Get-WindowsOptionalFeature -Online``: ``Microsoft.Dism.Commands.FeatureState`` enum State
  (names as the DISM PowerShell module prints them: Enabled, Disabled, DisabledWithPayloadRemoved).
* ``Get-NetFirewallProfile``: CIM ``MSFT_NetFirewallProfile`` whose Enabled is a ``GpoBoolean``
  (False=0, True=1, NotConfigured=2) and DefaultInboundAction an ``Action`` (NotConfigured=0,
  Allow=2, Block=4) from the NetSecurity module's cmdletization types.
* ``secedit /export /areas SECURITYPOLICY`` then ``Get-Content``: the INI's lines as strings
  ([Unicode], [System Access] ``Key = value``, [Version]), as on Windows Server 2022.
* ``auditpol /get /category:* /r | ConvertFrom-Csv``: PSCustomObjects with the CSV header's
  columns (Machine Name, Policy Target, Subcategory, Subcategory GUID, Inclusion Setting,
  Exclusion Setting).
* Registry: our script's own object (KeyPresent, ValuePresent, Value, Kind) with REG_DWORD as
  Int32, REG_SZ as String, REG_MULTI_SZ as String[] and Kind a ``RegistryValueKind`` name.
* ``Invoke-DscResource``: Test -> ``InDesiredState``; Get -> a Hashtable with the resource's
  properties and ``Reasons`` (an array of hashtables with Code and Phrase), as Machine
  Configuration's resources return them.
"""

from __future__ import annotations

import json
import os
from typing import Any

from psrpcore.types import PSCustomObject, PSEnumBase, PSObject, PSType, add_note_property

from psrpserver.context import Context, Handler


@PSType(["System.ServiceProcess.ServiceControllerStatus"])
class ServiceControllerStatus(PSEnumBase):
    Stopped = 1
    StartPending = 2
    StopPending = 3
    Running = 4
    ContinuePending = 5
    PausePending = 6
    Paused = 7


@PSType(["System.ServiceProcess.ServiceStartMode"])
class ServiceStartMode(PSEnumBase):
    Boot = 0
    System = 1
    Automatic = 2
    Manual = 3
    Disabled = 4


@PSType(["Microsoft.Dism.Commands.FeatureState"])
class FeatureState(PSEnumBase):
    Disabled = 0
    Enabled = 2
    DisabledWithPayloadRemoved = 6


@PSType(["Microsoft.PowerShell.Cmdletization.GeneratedTypes.NetSecurity.GpoBoolean"])
class GpoBoolean(PSEnumBase):
    # "False"/"True" are keywords, not identifiers: set through the class namespace
    locals()["False"] = 0
    locals()["True"] = 1
    NotConfigured = 2


@PSType(["Microsoft.PowerShell.Cmdletization.GeneratedTypes.NetSecurity.Action"])
class Action(PSEnumBase):
    NotConfigured = 0
    Allow = 2
    Block = 4


def _state() -> dict[str, Any]:
    with open(os.environ["PSRP_WINDOWS_STATE"]) as fh:
        data: dict[str, Any] = json.load(fh)
    return data


def _save(state: dict[str, Any]) -> None:
    with open(os.environ["PSRP_WINDOWS_STATE"], "w") as fh:
        json.dump(state, fh)


def _object(type_names: list[str], **props: Any) -> PSObject:
    obj = PSObject()
    obj.PSObject.type_names = [*type_names, "System.Object"]
    for name, value in props.items():
        add_note_property(obj, name, value)
    return obj


def registry(ctx: Context) -> None:
    keys = _state()["registry"]
    path, name = ctx.params["Path"], ctx.params["Name"]
    key = next((v for k, v in keys.items() if k.lower() == path.lower()), None)
    if key is None:
        ctx.output(PSCustomObject(KeyPresent=False))
        return
    entry = next((v for n, v in key.items() if n.lower() == name.lower()), None)
    ctx.output(PSCustomObject(KeyPresent=True, ValuePresent=entry is not None,
                              Value=entry["Value"] if entry else None,
                              Kind=entry["Kind"] if entry else None))


def registry_set(ctx: Context) -> None:
    state = _state()
    p = ctx.params
    state["registry"].setdefault(p["Path"], {})[p["Name"]] = {"Value": p["Value"],
                                                              "Kind": p["Kind"]}
    _save(state)


def service(ctx: Context) -> None:
    svc = _state()["services"].get(ctx.params["Name"])
    if svc is not None:
        ctx.output(_object(["Selected.System.ServiceProcess.ServiceController",
                            "System.Management.Automation.PSCustomObject"],
                           Name=ctx.params["Name"], Status=ServiceControllerStatus[svc["Status"]],
                           StartType=ServiceStartMode[svc["StartType"]]))


def service_set(ctx: Context) -> None:
    state = _state()
    svc = state["services"][ctx.params["Name"]]
    if ctx.params.get("StartType"):
        svc["StartType"] = ctx.params["StartType"]
    if ctx.params.get("Status"):
        svc["Status"] = ctx.params["Status"]
    _save(state)


def feature(ctx: Context) -> None:
    state = _state()["features"].get(ctx.params["FeatureName"])
    if state is not None:
        ctx.output(_object(["Selected.Microsoft.Dism.Commands.AdvancedFeatureObject",
                            "System.Management.Automation.PSCustomObject"],
                           FeatureName=ctx.params["FeatureName"], State=FeatureState[state]))


def account_policy(ctx: Context) -> None:
    lines = ["[Unicode]", "Unicode=yes", "[System Access]"]
    lines += [f"{k} = {v}" for k, v in _state()["account"].items()]
    lines += ["[Version]", 'signature="$CHICAGO$"', "Revision=1"]
    ctx.output(*lines)


def firewall(ctx: Context) -> None:
    profile = _state()["firewall"].get(ctx.params["Name"])
    if profile is None:
        ctx.error(f"No MSFT_NetFirewallProfile objects found with property 'Name' equal to "
                  f"'{ctx.params['Name']}'.", fqid="CmdletizationQuery_NotFound_Name,"
                  "Get-NetFirewallProfile")
        return
    enabled = GpoBoolean[profile["Enabled"]]
    ctx.output(_object(["Selected.Microsoft.Management.Infrastructure.CimInstance",
                        "System.Management.Automation.PSCustomObject"],
                       Name=ctx.params["Name"], Enabled=enabled,
                       DefaultInboundAction=Action[profile["DefaultInboundAction"]]))
    # (psrpcore's enum members share one PSObject per enum type, so a second Action value in
    # the same object would be serialized with the first one's ToString: the resource does not
    # select DefaultOutboundAction, and neither does this answer)


def audit_policy(ctx: Context) -> None:
    for sub, setting in _state()["audit"].items():
        ctx.output(PSCustomObject(**{
            "Machine Name": "WIN-SIM01", "Policy Target": "System", "Subcategory": sub,
            "Subcategory GUID": "{0CCE9215-69AE-11D9-BED3-505054503030}",
            "Inclusion Setting": setting, "Exclusion Setting": ""}))


def dsc(ctx: Context) -> None:
    res = _state()["dsc"][ctx.params["Name"]]
    get = dict(res["Get"])
    get["Reasons"] = [dict(r) for r in res.get("Reasons", [])]
    ctx.output(PSCustomObject(InDesiredState=res["InDesiredState"], Get=get))


def dsc_set(ctx: Context) -> None:
    state = _state()
    res = state["dsc"][ctx.params["Name"]]
    res.update(InDesiredState=True, Reasons=[])
    res["Get"].update(ctx.params["Property"])
    _save(state)


class _Capture:
    """What one check of a batch writes (the batch script's ``2>&1`` split into two lists)."""

    def __init__(self, check: dict[str, Any]) -> None:
        self.script: str = check["Script"]
        self.params: dict[str, Any] = dict(check["Params"] or {})
        self.args: list[Any] = []
        self.out: list[Any] = []
        self.errors: list[str] = []

    def output(self, *values: Any) -> None:
        self.out.extend(values)

    def error(self, message: str, **kwargs: Any) -> None:
        self.errors.append(message)


def batch(ctx: Context) -> None:
    """``# psdirect:compliance-batch``: each check's script run by its own handler; one
    ``[pscustomobject]@{Index; Output; Errors}`` per check, as the batch script writes them."""
    for check in ctx.params["Checks"]:
        capture = _Capture(check)
        handler = next(h for marker, h in HANDLERS.items() if marker in capture.script)
        handler(capture)  # type: ignore[arg-type]
        ctx.output(PSCustomObject(Index=check["Index"], Output=capture.out,
                                  Errors=capture.errors))


HANDLERS: dict[str, Handler] = {
    "# psdirect:compliance-batch\n": batch,
    "# psdirect:compliance-registry\n": registry,
    "# psdirect:compliance-registry-set\n": registry_set,
    "# psdirect:compliance-service\n": service,
    "# psdirect:compliance-service-set\n": service_set,
    "# psdirect:compliance-optionalfeature\n": feature,
    "# psdirect:compliance-accountpolicy\n": account_policy,
    "# psdirect:compliance-firewall\n": firewall,
    "# psdirect:compliance-auditpolicy\n": audit_policy,
    "# psdirect:compliance-dsc\n": dsc,
    "# psdirect:compliance-dsc-set\n": dsc_set,
}
