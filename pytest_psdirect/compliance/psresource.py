"""Resources read through a PowerShell session (``target.run_ps``): Windows settings, DSC.

A :class:`PSResource` is a constant ``param()`` script (first line ``# psdirect:compliance-NAME``,
which names it in logs and lets the test PSRP server answer it), the values it takes
(:meth:`~PSResource.params`, always passed as parameters, never pasted into the text), a parser
of what it returned and the reasons. The scripts return the objects Windows' own cmdlets return
(``Get-Service``, ``Get-NetFirewallProfile``, ...) or a few of their properties; the Python side
decides, so the same logic is tested without Windows.

Example (a resource of your own)::

    @dataclass(frozen=True)
    class TimeZone(PSResource):
        name: ClassVar[str] = "timezone"
        script: ClassVar[str] = "# psdirect:compliance-timezone\\nparam()\\n(Get-TimeZone).Id"
        zone: str

        def parse(self, output, errors):
            return {"zone": output[0] if output else None}

        def evaluate(self, props):
            if props["zone"] == self.zone:
                return []
            return [self.reason("zone", f"The time zone is {props['zone']}, expected {self.zone}.")]
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import ComplianceError
from .model import Observed, Reason, Resource

if TYPE_CHECKING:
    from ..powershell.result import ErrorRecord
    from ..sessions import TargetSession


@dataclass(frozen=True)
class PSResource(Resource):
    """A resource whose Get is one PowerShell script with its values passed as parameters."""

    script: ClassVar[str] = ""
    set_script: ClassVar[str | None] = None

    def params(self) -> dict[str, Any]:
        """The values the script's ``param()`` block takes."""
        return {}

    def set_params(self) -> dict[str, Any]:
        return self.params()

    @abc.abstractmethod
    def parse(self, output: Sequence[Any],
              errors: Sequence[ErrorRecord | str]) -> dict[str, Any]:
        """The properties, from the script's output objects and errors."""

    @abc.abstractmethod
    def evaluate(self, props: Mapping[str, Any]) -> list[Reason]:
        """The reasons these properties are non-compliant (none: compliant)."""

    def get(self, target: TargetSession) -> Observed:
        result = target.run_ps(self.script, parameters=self.params())
        props = self.parse(result.output, result.errors)
        return Observed(props, tuple(self.evaluate(props)))

    @property
    def can_set(self) -> bool:
        return self.set_script is not None

    def set(self, target: TargetSession) -> None:
        if self.set_script is None:
            super().set(target)
            return
        result = target.run_ps(self.set_script, parameters=self.set_params())
        if result.had_errors:
            shown = "; ".join(str(e) for e in result.errors[:3])
            raise ComplianceError(f"remediation of {self.id} failed: {shown}",
                                  target=target.url,
                                  hint="the account may lack the rights (Administrator)")


#: many PSResources in one pipeline: each check's (constant) script runs as a script block with
#: its values splatted as parameters; its output and errors come back in an object of its own
BATCH = (
    "# psdirect:compliance-batch\n"
    "param($Checks)\n"
    "foreach ($check in $Checks) {\n"
    "  $block = [scriptblock]::Create($check.Script)\n"
    "  $values = $check.Params\n"
    "  $all = try { & $block @values 2>&1 } catch { $_ }\n"
    "  $errors = @($all | Where-Object { $_ -is [System.Management.Automation.ErrorRecord] })\n"
    "  $output = @($all | Where-Object { $_ -isnot [System.Management.Automation.ErrorRecord] })\n"
    "  [pscustomobject]@{Index = $check.Index; Output = $output;\n"
    "    Errors = @($errors | ForEach-Object { $_.ToString() })}\n"
    "}\n")


def get_many_ps(target: TargetSession, resources: Sequence[PSResource]) -> list[Observed]:
    """Get every resource in one PowerShell pipeline (one round trip)."""
    checks = [{"Index": i, "Script": r.script, "Params": r.params()}
              for i, r in enumerate(resources)]
    result = target.run_ps(BATCH, parameters={"Checks": checks})
    answers: dict[int, Mapping[str, Any]] = {}
    for item in result.output:
        if isinstance(item, Mapping) and isinstance(item.get("Index"), int):
            answers[item["Index"]] = item
    missing = [r.id for i, r in enumerate(resources) if i not in answers]
    if missing:
        shown = "; ".join(str(e) for e in result.errors[:3]) or "no error record"
        raise ComplianceError(f"the PowerShell batch returned nothing for {missing[:5]} "
                              f"({len(missing)} of {len(resources)}): {shown}",
                              target=target.url, hint="run the checks one by one to see why")
    observed = []
    for index, resource in enumerate(resources):
        answer = answers[index]
        props = resource.parse(list(answer.get("Output") or []),
                               [str(e) for e in answer.get("Errors") or []])
        observed.append(Observed(props, tuple(resource.evaluate(props))))
    return observed


def first(output: Sequence[Any]) -> Mapping[str, Any] | None:
    """The first output object as a mapping (None when there is none)."""
    for item in output:
        if isinstance(item, Mapping):
            return item
    return None
