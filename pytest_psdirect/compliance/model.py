"""The Machine Configuration contract: Reasons, resources with get/test/set, results.

A resource's Get returns the current properties and a list of :class:`Reason`; no reason means
compliant. ``Code`` is ``resource:resource:identifier`` (three colon-separated parts, the resource
name repeated, no spaces), ``Phrase`` says in words why the setting is (non-)compliant.

Example::

    >>> Reason("file:file:mode", "/etc/shadow has mode 0644, expected at most 0640").resource
    'file'
    >>> Reason("file:sysctl:mode", "x")
    Traceback (most recent call last):
    ...
    pytest_psdirect.errors.ComplianceError: reason code 'file:sysctl:mode' breaks the rule ...
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import ComplianceError

if TYPE_CHECKING:
    from ..sessions import TargetSession

_HINT = "a Code is 'resource:resource:identifier', e.g. 'registry:registry:keynotpresent'"


def _code_error(code: object, rule: str) -> ComplianceError:
    return ComplianceError(f"reason code {code!r} breaks the rule {rule!r}", hint=_HINT)


@dataclass(frozen=True)
class Reason:
    """One reason of a Get: ``Code`` and ``Phrase`` validated against the contract."""

    code: str
    phrase: str

    def __post_init__(self) -> None:
        code = self.code
        if not isinstance(code, str):
            raise _code_error(code, "Code is a string")
        if not code or any(ch.isspace() for ch in code):
            raise _code_error(code, "no spaces (and not empty)")
        parts = code.split(":")
        if len(parts) != 3:
            raise _code_error(code, f"three colon-separated parts (found {len(parts)})")
        if not all(parts):
            raise _code_error(code, "no empty part")
        if parts[0] != parts[1]:
            raise _code_error(code, "the resource name is repeated (first part == second part)")
        if not isinstance(self.phrase, str):
            raise ComplianceError(f"reason {code!r}: Phrase must be a string, got "
                                  f"{type(self.phrase).__name__}", hint="Phrase is text")

    @property
    def resource(self) -> str:
        return self.code.split(":", 1)[0]

    @property
    def identifier(self) -> str:
        return self.code.rsplit(":", 1)[1]

    @classmethod
    def from_dsc(cls, value: Mapping[str, Any]) -> Reason:
        """A reason as DSC returns it (``{"Code": ..., "Phrase": ...}``), validated."""
        if not isinstance(value, Mapping) or "Code" not in value or "Phrase" not in value:
            raise ComplianceError(f"a reason must have Code and Phrase, got {value!r}",
                                  hint=_HINT)
        return cls(value["Code"], value["Phrase"])

    def to_dsc(self) -> dict[str, str]:
        return {"Code": self.code, "Phrase": self.phrase}

    def to_report(self) -> dict[str, str]:
        """As Machine Configuration's assignment report spells it (``code``, ``phrase``)."""
        return {"code": self.code, "phrase": self.phrase}

    def __str__(self) -> str:
        return f"{self.code}  {self.phrase}"


class Mode(enum.Enum):
    """Audit only reports; AuditAndSet also remediates (test -> set -> test -> get)."""

    AUDIT = "audit"
    AUDIT_AND_SET = "audit-and-set"

    @classmethod
    def parse(cls, text: str | Mode) -> Mode:
        if isinstance(text, Mode):
            return text
        for mode in cls:
            if mode.value == text.lower().replace("_", "-"):
                return mode
        raise ComplianceError(f"unknown compliance mode {text!r}",
                              hint="use audit or audit-and-set")


@dataclass(frozen=True)
class Observed:
    """What a Get returned: the effective properties and the reasons (none = compliant)."""

    properties: Mapping[str, Any]
    reasons: Sequence[Reason] = ()


@dataclass(frozen=True)
class ComplianceResult:
    """The outcome of checking one resource on one target."""

    resource: Resource
    compliant: bool
    reasons: tuple[Reason, ...]
    properties: Mapping[str, Any]
    mode: Mode = Mode.AUDIT
    remediated: bool = False
    target: str = ""
    duration: float = 0.0
    before: tuple[Reason, ...] = ()  # the reasons that set remediated (AuditAndSet)

    @property
    def status(self) -> str:
        """``Compliant`` or ``NonCompliant``, as Machine Configuration spells it."""
        return "Compliant" if self.compliant else "NonCompliant"

    def to_dict(self) -> dict[str, Any]:
        """The Machine Configuration resource shape plus ours (JSON-able)."""
        return {
            "resourceId": self.resource.id, "resource": self.resource.name,
            "complianceStatus": self.status, "target": self.target,
            "reasons": [r.to_report() for r in self.reasons],
            "properties": {k: jsonable(v) for k, v in self.properties.items()},
            "expected": {k: jsonable(v) for k, v in self.resource.expected().items()},
            "mode": self.mode.value, "remediated": self.remediated,
            "remediatedReasons": [r.to_report() for r in self.before],
            "durationSeconds": round(self.duration, 6),
        }


def jsonable(value: Any) -> Any:
    """``value`` as JSON types (tuples become lists, anything else its ``str``)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return str(value)


@dataclass(frozen=True)
class Resource(abc.ABC):
    """A DSC-style resource: ``get`` the state with reasons, ``test`` it, ``set`` it.

    Subclasses are frozen dataclasses (hashable, shown in test ids) with a class-level ``name``
    used in reason codes. Write your own by overriding :meth:`get` (and :meth:`set` to allow
    AuditAndSet); Linux resources that batch derive from
    :class:`~pytest_psdirect.compliance.shell.ShellResource` instead.

    >>> @dataclass(frozen=True)
    ... class Motd(Resource):
    ...     name: ClassVar[str] = "motd"
    ...     def get(self, target):
    ...         text = target.check_output("cat /etc/motd")
    ...         bad = [Reason("motd:motd:empty", "/etc/motd is empty")] if not text else []
    ...         return Observed({"text": text}, bad)
    """

    name: ClassVar[str] = "resource"
    #: the check's id in reports and waivers; default: name[key]
    check_id: str = field(default="", kw_only=True, compare=False)

    @property
    def id(self) -> str:
        return self.check_id or f"{self.name}[{self.key()}]"

    def key(self) -> str:
        """What this instance is about (a path, a setting name); part of :attr:`id`."""
        return ""

    def expected(self) -> Mapping[str, Any]:
        """The desired properties, for the diff shown when the check fails."""
        return {}

    def reason(self, identifier: str, phrase: str) -> Reason:
        """A :class:`Reason` with this resource's code prefix."""
        return Reason(f"{self.name}:{self.name}:{identifier}", phrase)

    @abc.abstractmethod
    def get(self, target: TargetSession) -> Observed:
        """The current state and the reasons it is (non-)compliant."""

    def test(self, target: TargetSession) -> bool:
        """True when compliant (the default: Get returned no reasons)."""
        return not self.get(target).reasons

    def set(self, target: TargetSession) -> None:
        raise ComplianceError(f"{self.id} cannot be remediated: {type(self).__name__} has no set()",
                              target=target.url, hint="run in audit mode or implement set()")

    @property
    def can_set(self) -> bool:
        return type(self).set is not Resource.set

    def __str__(self) -> str:
        return self.id
