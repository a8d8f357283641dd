"""A DSC resource on the target (``Invoke-DscResource``), as Machine Configuration runs it.

Test decides compliance; Get's ``Reasons`` (``{Code, Phrase}`` each) say why, and are validated
against the contract: a resource that returns a malformed Code fails with the rule it breaks.
In AuditAndSet, Set is ``Invoke-DscResource -Method Set``.

Example::

    DscResource("AuditPolicySubcategory", "AuditPolicyDsc",
                {"Name": "Logon", "AuditFlag": "Failure", "Ensure": "Present"})
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..model import Reason
from ..psresource import PSResource, first

_SCRIPT = (
    "# psdirect:compliance-dsc\n"
    "param($Name, $ModuleName, $ModuleVersion, $Property)\n"
    "$module = if ($ModuleVersion) { @{ModuleName = $ModuleName; ModuleVersion = $ModuleVersion} }"
    " else { $ModuleName }\n"
    "$test = Invoke-DscResource -Name $Name -ModuleName $module -Method Test -Property $Property\n"
    "$get = Invoke-DscResource -Name $Name -ModuleName $module -Method Get -Property $Property\n"
    "[pscustomobject]@{InDesiredState = [bool]$test.InDesiredState; Get = $get}\n")
_SET = (
    "# psdirect:compliance-dsc-set\n"
    "param($Name, $ModuleName, $ModuleVersion, $Property)\n"
    "$module = if ($ModuleVersion) { @{ModuleName = $ModuleName; ModuleVersion = $ModuleVersion} }"
    " else { $ModuleName }\n"
    "Invoke-DscResource -Name $Name -ModuleName $module -Method Set -Property $Property\n")


@dataclass(frozen=True)
class DscResource(PSResource):
    """Any DSC resource: its Test, its Get's properties and Reasons (validated)."""

    name: ClassVar[str] = "dsc"
    script: ClassVar[str] = _SCRIPT
    set_script: ClassVar[str | None] = _SET
    resource: str
    module: str
    properties: Mapping[str, Any] = field(default_factory=dict, hash=False)
    module_version: str = ""

    def __hash__(self) -> int:
        return hash((self.resource, self.module, self.module_version,
                     tuple(sorted((k, repr(v)) for k, v in self.properties.items()))))

    def key(self) -> str:
        ident = next((str(self.properties[k]) for k in ("Name", "Key", "Path", "Id")
                      if k in self.properties), "")
        return f"{self.module}/{self.resource}" + (f":{ident}" if ident else "")

    def expected(self) -> Mapping[str, Any]:
        return dict(self.properties)

    def params(self) -> dict[str, Any]:
        return {"Name": self.resource, "ModuleName": self.module,
                "ModuleVersion": self.module_version, "Property": dict(self.properties)}

    def parse(self, output: Sequence[Any], errors: Sequence[Any]) -> dict[str, Any]:
        obj = first(output)
        if obj is None:
            shown = "; ".join(str(e) for e in errors[:2]) or "no output"
            return {"InDesiredState": False, "Error": shown, "Reasons": []}
        got = obj.get("Get") or {}
        props = {k: v for k, v in got.items() if k != "Reasons"} if isinstance(got, Mapping) \
            else {}
        raw = got.get("Reasons") if isinstance(got, Mapping) else None
        reasons = [Reason.from_dsc(r) for r in (raw or [])]  # validated: a bad Code raises
        return {**props, "InDesiredState": bool(obj.get("InDesiredState")),
                "Reasons": [r.to_dsc() for r in reasons]}

    def evaluate(self, props: Mapping[str, Any]) -> list[Reason]:
        if props["InDesiredState"]:
            return []
        reasons = [Reason.from_dsc(r) for r in props.get("Reasons", [])]
        if reasons:
            return reasons
        name = self.resource.lower()
        why = props.get("Error") or "Test returned InDesiredState = False and Get gave no reasons"
        return [Reason(f"{name}:{name}:notindesiredstate", f"{self.resource}: {why}.")]
