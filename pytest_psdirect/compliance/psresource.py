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

    def parse(self, output: Sequence[Any], errors: Sequence[ErrorRecord]) -> dict[str, Any]:
        raise NotImplementedError

    def evaluate(self, props: Mapping[str, Any]) -> list[Reason]:
        raise NotImplementedError

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


def first(output: Sequence[Any]) -> Mapping[str, Any] | None:
    """The first output object as a mapping (None when there is none)."""
    for item in output:
        if isinstance(item, Mapping):
            return item
    return None
