"""A resource of your own: a small class with a shell probe, a parser and the reasons."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pytest_psdirect.compliance import Reason, ShellResource
from pytest_psdirect.compliance.batch import Frame


@dataclass(frozen=True)
class OnlyRootHasUidZero(ShellResource):
    """No account but root has uid 0 (every NSS source, through getent)."""

    name: ClassVar[str] = "uidzero"

    def probe(self) -> str:
        return "getent passwd | awk -F: '$3 == 0 { print $1 }'"

    def parse(self, frame: Frame) -> dict[str, Any]:
        return {"accounts": frame.text.split()}

    def evaluate(self, props: Mapping[str, Any]) -> list[Reason]:
        others = [a for a in props["accounts"] if a != "root"]
        return [self.reason("others", f"Accounts other than root have uid 0: {', '.join(others)}.")
                ] if others else []

    def expected(self) -> Mapping[str, Any]:
        return {"accounts": ["root"]}
