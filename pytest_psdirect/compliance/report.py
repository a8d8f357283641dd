"""The compliance report: per target, Machine Configuration's shape plus timings and waivers.

Each test that ran on a target is a row (:class:`Row`); its resources are what the test checked
(``target.check``), or, for a plain test, the test itself as one resource (reason
``pytest:pytest:failed`` when it failed). ``build_report`` groups rows per target::

    {"targets": [{"target": "ssh://a@web01", "complianceStatus": "NonCompliant",
                  "resources": [{"resourceId": "sshd[permitrootlogin]", "test": "...",
                                 "complianceStatus": "NonCompliant",
                                 "reasons": [{"code": "sshd:sshd:permitrootlogin",
                                              "phrase": "..."}], ...}],
                  "timings": {"totalSeconds": 1.2, "checks": 25}}],
     "waivers": [...], "reasonsBaseline": {"appeared": [...], "disappeared": [...]}}
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ComplianceError

#: statuses of a row, worst first
STATUSES = ("NonCompliant", "Error", "Waived", "Compliant", "Skipped")


@dataclass
class Row:
    """One test on one target, as the controller saw its reports."""

    target: str
    check: str
    nodeid: str
    status: str = "Compliant"
    resources: list[dict[str, Any]] = field(default_factory=list)
    duration: float = 0.0
    waiver: dict[str, Any] | None = None
    marks: dict[str, Any] = field(default_factory=dict)
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "test": self.nodeid, "complianceStatus": self.status,
                "durationSeconds": round(self.duration, 6), "waiver": self.waiver,
                **self.marks, "message": self.message, "resources": self.resources}


def _target_status(rows: list[Row]) -> str:
    statuses = {r.status for r in rows}
    return "NonCompliant" if statuses & {"NonCompliant", "Error"} else "Compliant"


def build_report(rows: Iterable[Row], mode: str, waivers: Iterable[Mapping[str, Any]] = (),
                 baseline: Mapping[str, Any] | None = None) -> dict[str, Any]:
    by_target: dict[str, list[Row]] = {}
    for row in rows:
        by_target.setdefault(row.target, []).append(row)
    targets = []
    for url in sorted(by_target):
        mine = sorted(by_target[url], key=lambda r: r.nodeid)
        targets.append({
            "target": url, "complianceStatus": _target_status(mine),
            "counts": {s: sum(1 for r in mine if r.status == s) for s in STATUSES},
            "timings": {"totalSeconds": round(sum(r.duration for r in mine), 6),
                        "checks": len(mine)},
            "checks": [r.to_dict() for r in mine],
            "resources": [res for r in mine for res in r.resources],
        })
    report: dict[str, Any] = {
        "generated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "mode": mode, "targets": targets, "waivers": list(waivers)}
    if baseline is not None:
        report["reasonsBaseline"] = dict(baseline)
    return report


def reason_keys(report: Mapping[str, Any]) -> set[tuple[str, str, str]]:
    """(target, resourceId, code) of every reason in a report."""
    keys = set()
    for target in report.get("targets", []):
        for resource in target.get("resources", []):
            for reason in resource.get("reasons", []):
                keys.add((target["target"], resource.get("resourceId", ""), reason["code"]))
    return keys


def load_report(path: str | Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ComplianceError(f"cannot read the reasons baseline {path}: {exc}",
                              hint="pass a --compliance-report JSON of an earlier run") from None
    if not isinstance(data, dict) or "targets" not in data:
        raise ComplianceError(f"{path} is not a compliance report (no 'targets')",
                              hint="pass a --compliance-report JSON of an earlier run")
    return data


def compare(previous: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    """Which reasons appeared and which disappeared since ``previous``.

    >>> old = {"targets": [{"target": "t", "resources": [{"resourceId": "r",
    ...        "reasons": [{"code": "a:a:x", "phrase": ""}]}]}]}
    >>> new = {"targets": [{"target": "t", "resources": [{"resourceId": "r",
    ...        "reasons": [{"code": "a:a:y", "phrase": ""}]}]}]}
    >>> [d["code"] for d in compare(old, new)["appeared"]]
    ['a:a:y']
    >>> [d["code"] for d in compare(old, new)["disappeared"]]
    ['a:a:x']
    """
    before, after = reason_keys(previous), reason_keys(current)

    def listing(keys: set[tuple[str, str, str]]) -> list[dict[str, str]]:
        return [{"target": t, "resourceId": r, "code": c} for t, r, c in sorted(keys)]

    return {"previous": previous.get("generated"), "appeared": listing(after - before),
            "disappeared": listing(before - after)}
