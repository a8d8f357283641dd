"""Windows resources over a PowerShell session: registry value, service, optional feature,
account policy, firewall profile, audit policy.

Each script returns what Windows' own tools return (see the docstring of each class for the
shape); the values are passed as parameters, never pasted into the script.

Example::

    RegistryValue(r"HKLM:\\SYSTEM\\CurrentControlSet\\Control\\Lsa", "LmCompatibilityLevel", 5)
    WindowsService("RemoteRegistry", status="Stopped", start_type="Disabled")
    OptionalFeature("SMB1Protocol", state="Disabled")
    AccountPolicy(MinimumPasswordLength=14, LockoutBadCount=5)
    FirewallProfile("Public", enabled=True, default_inbound="Block")
    AuditPolicy("Logon", "Success and Failure")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ...errors import ComplianceError
from ..model import Reason
from ..psresource import PSResource, first


@dataclass(frozen=True)
class RegistryValue(PSResource):
    """A registry value: its data and kind (``DWord``, ``String``...) from ``Get-Item``.

    Shape: the script returns ``KeyPresent``, ``ValuePresent``, ``Value`` (REG_DWORD as Int32,
    REG_SZ as String, REG_MULTI_SZ as String[]) and ``Kind`` (``RegistryValueKind`` name).
    """

    name: ClassVar[str] = "registry"
    script: ClassVar[str] = (
        "# psdirect:compliance-registry\n"
        "param($Path, $Name)\n"
        "if (-not (Test-Path -LiteralPath $Path)) { return [pscustomobject]@{KeyPresent = $false} }\n"
        "$key = Get-Item -LiteralPath $Path\n"
        "$present = $key.GetValueNames() -contains $Name\n"
        "[pscustomobject]@{KeyPresent = $true; ValuePresent = $present;\n"
        "  Value = $(if ($present) { $key.GetValue($Name) });\n"
        "  Kind = $(if ($present) { $key.GetValueKind($Name).ToString() })}\n")
    set_script: ClassVar[str | None] = (
        "# psdirect:compliance-registry-set\n"
        "param($Path, $Name, $Value, $Kind)\n"
        "if (-not (Test-Path -LiteralPath $Path)) { New-Item -Path $Path -Force | Out-Null }\n"
        "New-ItemProperty -LiteralPath $Path -Name $Name -Value $Value -PropertyType $Kind "
        "-Force | Out-Null\n")
    path: str
    value_name: str
    value: str | int | tuple[str, ...]
    kind: str = "DWord"

    def key(self) -> str:
        return f"{self.path}\\{self.value_name}"

    def expected(self) -> Mapping[str, Any]:
        return {"Value": self.value, "Kind": self.kind}

    def params(self) -> dict[str, Any]:
        return {"Path": self.path, "Name": self.value_name}

    def set_params(self) -> dict[str, Any]:
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        return {**self.params(), "Value": value, "Kind": self.kind}

    def parse(self, output: Sequence[Any], errors: Sequence[Any]) -> dict[str, Any]:
        obj = first(output) or {}
        value = obj.get("Value")
        return {"KeyPresent": bool(obj.get("KeyPresent")),
                "ValuePresent": bool(obj.get("ValuePresent")),
                "Value": tuple(value) if isinstance(value, list) else value,
                "Kind": obj.get("Kind")}

    def evaluate(self, props: Mapping[str, Any]) -> list[Reason]:
        if not props["KeyPresent"]:
            return [self.reason("keynotpresent", f"The registry key {self.path} isn't present "
                                                 "on the machine.")]
        if not props["ValuePresent"]:
            return [self.reason("valuenotpresent", f"The registry value {self.value_name} isn't "
                                                   f"present in {self.path}.")]
        if props["Value"] != self.value or props["Kind"] != self.kind:
            return [self.reason("valuemismatch", f"The registry value {self.value_name} in "
                                                 f"{self.path} is {props['Value']!r} "
                                                 f"({props['Kind']}), expected {self.value!r} "
                                                 f"({self.kind}).")]
        return []


@dataclass(frozen=True)
class WindowsService(PSResource):
    """A service's ``Status`` and ``StartType`` (``Get-Service``; enums as their names)."""

    name: ClassVar[str] = "service"
    script: ClassVar[str] = (
        "# psdirect:compliance-service\n"
        "param($Name)\n"
        "Get-Service -Name $Name -ErrorAction SilentlyContinue | "
        "Select-Object -Property @('Name', 'Status', 'StartType')\n")
    set_script: ClassVar[str | None] = (
        "# psdirect:compliance-service-set\n"
        "param($Name, $Status, $StartType)\n"
        "if ($StartType) { Set-Service -Name $Name -StartupType $StartType }\n"
        "if ($Status -eq 'Running') { Start-Service -Name $Name }\n"
        "elseif ($Status -eq 'Stopped') { Stop-Service -Name $Name -Force }\n")
    service: str
    status: str | None = "Running"
    start_type: str | None = None
    present: bool = True

    def key(self) -> str:
        return self.service

    def expected(self) -> Mapping[str, Any]:
        return {k: v for k, v in (("Status", self.status), ("StartType", self.start_type))
                if v is not None}

    def params(self) -> dict[str, Any]:
        return {"Name": self.service}

    def set_params(self) -> dict[str, Any]:
        return {"Name": self.service, "Status": self.status or "",
                "StartType": self.start_type or ""}

    def parse(self, output: Sequence[Any], errors: Sequence[Any]) -> dict[str, Any]:
        obj = first(output)
        if obj is None:
            return {"Present": False}
        return {"Present": True, "Status": obj.get("Status"), "StartType": obj.get("StartType")}

    def evaluate(self, props: Mapping[str, Any]) -> list[Reason]:
        if not props["Present"]:
            return [self.reason("notpresent", f"The service {self.service} isn't present on "
                                              "the machine.")] if self.present else []
        if not self.present:
            return [self.reason("present", f"The service {self.service} is present; it should "
                                           "not be.")]
        reasons = []
        if self.status is not None and props["Status"] != self.status:
            reasons.append(self.reason("status", f"The service {self.service} is "
                                                 f"{props['Status']}, expected {self.status}."))
        if self.start_type is not None and props["StartType"] != self.start_type:
            reasons.append(self.reason("starttype", f"The service {self.service} starts "
                                                    f"{props['StartType']}, expected "
                                                    f"{self.start_type}."))
        return reasons


@dataclass(frozen=True)
class OptionalFeature(PSResource):
    """``Get-WindowsOptionalFeature -Online``'s ``State`` (``Enabled``, ``Disabled``,
    ``DisabledWithPayloadRemoved``, ``EnablePending``...)."""

    name: ClassVar[str] = "windowsfeature"
    script: ClassVar[str] = (
        "# psdirect:compliance-optionalfeature\n"
        "param($FeatureName)\n"
        "Get-WindowsOptionalFeature -Online -FeatureName $FeatureName "
        "-ErrorAction SilentlyContinue | Select-Object -Property @('FeatureName', 'State')\n")
    feature: str
    state: str = "Disabled"

    def key(self) -> str:
        return self.feature

    def expected(self) -> Mapping[str, Any]:
        return {"State": self.state}

    def params(self) -> dict[str, Any]:
        return {"FeatureName": self.feature}

    def parse(self, output: Sequence[Any], errors: Sequence[Any]) -> dict[str, Any]:
        obj = first(output)
        return {"Present": obj is not None, "State": obj.get("State") if obj else None}

    def evaluate(self, props: Mapping[str, Any]) -> list[Reason]:
        if not props["Present"]:
            # an unknown feature cannot be enabled: compliant when it should be off
            return [] if self.state.startswith("Disabled") else [self.reason(
                "notpresent", f"The optional feature {self.feature} isn't present on the "
                              "machine.")]
        state = str(props["State"])
        off = self.state.startswith("Disabled") and state.startswith("Disabled")
        if state == self.state or off:
            return []
        return [self.reason("state", f"The optional feature {self.feature} is {state}, "
                                     f"expected {self.state}.")]


#: secedit's [System Access] keys and how they compare: at least, at most or equal
ACCOUNT_POLICY = {
    "MinimumPasswordLength": ">=", "PasswordHistorySize": ">=", "MaximumPasswordAge": "<=",
    "MinimumPasswordAge": ">=", "PasswordComplexity": "==", "ClearTextPassword": "==",
    "LockoutBadCount": "<=", "LockoutDuration": ">=", "ResetLockoutCount": ">=",
    "EnableGuestAccount": "==", "EnableAdminAccount": "==", "LSAAnonymousNameLookup": "==",
}


#: where 0 (or -1) switches the protection off instead of being the smallest value
_ZERO_MEANS_NEVER = ("MaximumPasswordAge", "LockoutBadCount")


@dataclass(frozen=True, init=False)
class AccountPolicy(PSResource):
    """Password and lockout policy from ``secedit /export /areas SECURITYPOLICY`` (the INI's
    ``[System Access]`` section, locale-independent names), e.g. ``MinimumPasswordLength``."""

    name: ClassVar[str] = "accountpolicy"
    script: ClassVar[str] = (
        "# psdirect:compliance-accountpolicy\n"
        "param()\n"
        "$file = [System.IO.Path]::GetTempFileName()\n"
        "try { secedit.exe /export /cfg $file /areas SECURITYPOLICY | Out-Null\n"
        "      Get-Content -LiteralPath $file }\n"
        "finally { Remove-Item -LiteralPath $file -ErrorAction SilentlyContinue }\n")
    settings: tuple[tuple[str, int], ...] = field(default=())

    def __init__(self, check_id: str = "", **settings: int) -> None:
        unknown = sorted(set(settings) - set(ACCOUNT_POLICY))
        if unknown:
            raise ComplianceError(f"unknown account policy setting(s) {unknown}",
                                  hint=f"known: {', '.join(sorted(ACCOUNT_POLICY))}")
        object.__setattr__(self, "check_id", check_id)
        object.__setattr__(self, "settings", tuple(sorted(settings.items())))

    def key(self) -> str:
        return ",".join(k for k, _ in self.settings)

    def expected(self) -> Mapping[str, Any]:
        return {k: v for k, v in self.settings}

    def parse(self, output: Sequence[Any], errors: Sequence[Any]) -> dict[str, Any]:
        props: dict[str, Any] = {}
        section = ""
        for line in (str(x) for x in output):
            line = line.strip()
            if line.startswith("["):
                section = line
            elif section == "[System Access]" and "=" in line:
                key, _, value = (p.strip() for p in line.partition("="))
                props[key] = int(value) if value.lstrip("-").isdigit() else value.strip('"')
        return props

    def evaluate(self, props: Mapping[str, Any]) -> list[Reason]:
        reasons = []
        for key, want in self.settings:
            have, op = props.get(key), ACCOUNT_POLICY[key]
            ok = isinstance(have, int) and (have >= want if op == ">=" else
                                            have <= want if op == "<=" else have == want)
            if key in _ZERO_MEANS_NEVER and have in (0, -1):
                ok = False  # 0/-1: passwords never expire, accounts never lock out
            if not ok:
                wanted = {">=": f"at least {want}", "<=": f"at most {want}"}.get(op, str(want))
                reasons.append(self.reason(key.lower(), f"{key} is {have}, expected {wanted}."))
        return reasons


@dataclass(frozen=True)
class FirewallProfile(PSResource):
    """``Get-NetFirewallProfile``: ``Enabled`` (a GpoBoolean: True, False, NotConfigured) and
    ``DefaultInboundAction`` (NotConfigured, Allow, Block) of one profile."""

    name: ClassVar[str] = "firewall"
    script: ClassVar[str] = (
        "# psdirect:compliance-firewall\n"
        "param($Name)\n"
        "Get-NetFirewallProfile -Name $Name | "
        "Select-Object -Property @('Name', 'Enabled', 'DefaultInboundAction')\n")
    profile: str
    enabled: bool = True
    default_inbound: str | None = None

    def key(self) -> str:
        return self.profile

    def expected(self) -> Mapping[str, Any]:
        wanted: dict[str, Any] = {"Enabled": str(self.enabled)}
        if self.default_inbound:
            wanted["DefaultInboundAction"] = self.default_inbound
        return wanted

    def params(self) -> dict[str, Any]:
        return {"Name": self.profile}

    def parse(self, output: Sequence[Any], errors: Sequence[Any]) -> dict[str, Any]:
        obj = first(output) or {}
        return {"Present": bool(obj), "Enabled": str(obj.get("Enabled")),
                "DefaultInboundAction": obj.get("DefaultInboundAction")}

    def evaluate(self, props: Mapping[str, Any]) -> list[Reason]:
        if not props["Present"]:
            return [self.reason("notpresent", f"The firewall profile {self.profile} isn't "
                                              "present on the machine.")]
        reasons = []
        if props["Enabled"] != str(self.enabled):
            reasons.append(self.reason("enabled", f"The {self.profile} firewall profile's "
                                                  f"Enabled is {props['Enabled']}, expected "
                                                  f"{self.enabled}."))
        inbound = props["DefaultInboundAction"]
        # NotConfigured inherits Windows' default for inbound: Block
        effective = "Block" if inbound == "NotConfigured" else inbound
        if self.default_inbound and effective != self.default_inbound:
            reasons.append(self.reason("defaultinbound", f"The {self.profile} firewall profile "
                                                         f"allows inbound by default ({inbound}),"
                                                         f" expected {self.default_inbound}."))
        return reasons


@dataclass(frozen=True)
class AuditPolicy(PSResource):
    """One subcategory of ``auditpol /get /category:* /r`` (CSV: Machine Name, Policy Target,
    Subcategory, Subcategory GUID, Inclusion Setting, Exclusion Setting, Setting Value)."""

    name: ClassVar[str] = "auditpolicy"
    script: ClassVar[str] = (
        "# psdirect:compliance-auditpolicy\n"
        "param()\n"
        "auditpol.exe /get /category:* /r | Where-Object { $_ } | ConvertFrom-Csv\n")
    subcategory: str
    setting: str = "Success and Failure"

    def key(self) -> str:
        return self.subcategory

    def expected(self) -> Mapping[str, Any]:
        return {"Inclusion Setting": self.setting}

    def parse(self, output: Sequence[Any], errors: Sequence[Any]) -> dict[str, Any]:
        for row in output:
            if isinstance(row, Mapping) and row.get("Subcategory") == self.subcategory:
                return {"Present": True, "Inclusion Setting": row.get("Inclusion Setting")}
        return {"Present": False, "Inclusion Setting": None}

    def evaluate(self, props: Mapping[str, Any]) -> list[Reason]:
        if not props["Present"]:
            return [self.reason("notpresent", f"The audit subcategory {self.subcategory} isn't "
                                              "known on the machine.")]
        have = str(props["Inclusion Setting"])
        wanted = set(self.setting.replace("No Auditing", "").split(" and ")) - {""}
        got = set(have.replace("No Auditing", "").split(" and ")) - {""}
        if wanted <= got:
            return []
        return [self.reason("setting", f"Auditing of {self.subcategory} is {have}, expected "
                                       f"{self.setting}.")]
