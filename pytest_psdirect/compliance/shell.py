"""Resources read by a POSIX shell fragment: one fragment + one parser each, so they batch.

A :class:`ShellResource` says what to run (:meth:`~ShellResource.probe`, a shell fragment with
every value quoted by :func:`q`), how to read what came back (:meth:`~ShellResource.parse`) and
what is wrong with it (:meth:`~ShellResource.evaluate` -> reasons); :meth:`~ShellResource.fix`
is the fragment that remediates. ``get`` on one resource is a batch of one.

Example (a resource of your own)::

    @dataclass(frozen=True)
    class Hostname(ShellResource):
        name: ClassVar[str] = "hostname"
        expected_name: str

        def probe(self) -> str:
            return "hostname"

        def parse(self, frame: Frame) -> dict[str, Any]:
            return {"hostname": frame.text.strip()}

        def evaluate(self, props: Mapping[str, Any]) -> list[Reason]:
            if props["hostname"] == self.expected_name:
                return []
            return [self.reason("name", f"hostname is {props['hostname']}, expected "
                                        f"{self.expected_name}")]
"""

from __future__ import annotations

import abc
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ComplianceError
from .batch import Frame, build_script, parse_output
from .model import Observed, Reason, Resource

if TYPE_CHECKING:
    from ..sessions import TargetSession


def q(value: object) -> str:
    """One shell word (``shlex.quote``): every value in a fragment goes through here."""
    return shlex.quote(str(value))


@dataclass(frozen=True)
class ShellResource(Resource):
    """A resource whose Get is one shell fragment and a parser (batchable)."""

    @abc.abstractmethod
    def probe(self) -> str:
        """The shell fragment that prints what :meth:`parse` reads (values quoted)."""

    @abc.abstractmethod
    def parse(self, frame: Frame) -> dict[str, Any]:
        """The properties, from the fragment's framed output."""

    @abc.abstractmethod
    def evaluate(self, props: Mapping[str, Any]) -> list[Reason]:
        """The reasons these properties are non-compliant (none: compliant)."""

    def fix(self) -> str | None:
        """The fragment that makes this resource compliant (None: cannot remediate)."""
        return None

    @property
    def can_set(self) -> bool:
        return self.fix() is not None

    def observe(self, frame: Frame) -> Observed:
        props = self.parse(frame)
        return Observed(props, tuple(self.evaluate(props)))

    def get(self, target: TargetSession) -> Observed:
        return get_many(target, [self])[0]

    def set(self, target: TargetSession) -> None:
        set_many(target, [self])


def run_batch(target: TargetSession, fragments: Sequence[str]) -> list[Frame]:
    """Run ``fragments`` as one remote script (one round trip); their frames in order."""
    if not fragments:
        return []
    script, nonce = build_script(fragments)
    result = target.run(script)
    return parse_output(result.stdout_bytes, nonce, len(fragments), target.url)


def get_many(target: TargetSession, resources: Sequence[ShellResource]) -> list[Observed]:
    """Get every resource in one round trip; identical probes (every ``sshd -T``, every read
    of /proc/self/mounts) run once and their frame goes to each resource that asked."""
    probes = [r.probe() for r in resources]
    unique = list(dict.fromkeys(probes))
    frames = dict(zip(unique, run_batch(target, unique), strict=True))
    return [r.observe(frames[p]) for r, p in zip(resources, probes, strict=True)]


def set_many(target: TargetSession, resources: Sequence[ShellResource]) -> None:
    """Run every resource's fix in one round trip; a failed fix is a ComplianceError."""
    fixes = []
    for resource in resources:
        fix = resource.fix()
        if fix is None:
            raise ComplianceError(f"{resource.id} cannot be remediated (no fix)",
                                  target=target.url, hint="run it in audit mode")
        fixes.append(fix)
    frames = run_batch(target, fixes)
    failed = [f"{r.id}: exit {f.rc}: {f.stderr.decode(errors='replace').strip()[:300]}"
              for r, f in zip(resources, frames, strict=True) if f.rc != 0]
    if failed:
        raise ComplianceError("remediation failed: " + "; ".join(failed), target=target.url,
                              hint="the account may lack the rights (root) to change this")


def lines_kv(text: str) -> dict[str, str]:
    """``key value`` lines -> dict (first word is the key).

    >>> lines_kv("exists 1\\nmode 640\\n")
    {'exists': '1', 'mode': '640'}
    """
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key:
            out.setdefault(key, value)
    return out
