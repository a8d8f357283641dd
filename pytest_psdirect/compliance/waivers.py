"""Waivers: a check known to fail, accepted until a date, with a justification.

A waivers file (YAML with pyyaml installed, or TOML/JSON) lists waivers by check id: the
``id=`` of ``@pytest.mark.compliance``, a resource id such as ``sshd[permitrootlogin]``, or the
test's name (``test_sshd`` / ``test_sshd[permitrootlogin-no]``)::

    # waivers.yml
    - id: sshd[permitrootlogin]
      justification: "break-glass access until the bastion lands (CHG-1234)"
      expiration: 2026-12-31
      run: true          # run it, report the outcome as waived (default true)
    - id: test_no_insecure_packages
      justification: "legacy NIS client, decommissioned in Q1"
      expiration: 2027-03-31
      run: false         # do not run it at all

Every waiver has an expiration date; an expired one is ignored (the check counts again) with a
warning naming it, and listed in the report's ``expiredWaivers``.
"""

from __future__ import annotations

import datetime as dt
import json
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ComplianceError


@dataclass(frozen=True)
class Waiver:
    id: str
    justification: str
    expiration: dt.date
    run: bool = True

    def expired(self, today: dt.date) -> bool:
        return self.expiration < today

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "justification": self.justification, "run": self.run,
                "expiration": self.expiration.isoformat()}


def _entry(raw: Any, where: str) -> Waiver:
    if not isinstance(raw, Mapping):
        raise ComplianceError(f"{where}: a waiver is a mapping with id and justification, "
                              f"got {raw!r}", hint="see the waivers file example in the README")
    unknown = set(raw) - {"id", "justification", "expiration", "run"}
    if unknown:
        raise ComplianceError(f"{where}: unknown key(s) {sorted(unknown)}",
                              hint="keys: id, justification, expiration, run")
    if not isinstance(raw.get("id"), str) or not raw["id"]:
        raise ComplianceError(f"{where}: the waiver has no id", hint="id: the check's id")
    if not isinstance(raw.get("justification"), str) or not raw["justification"].strip():
        raise ComplianceError(f"{where}: waiver {raw['id']!r} has no justification",
                              hint="say why the check is accepted to fail")
    expiration = raw.get("expiration")
    if expiration is None:
        raise ComplianceError(f"{where}: waiver {raw['id']!r} has no expiration",
                              hint="every waiver ends: expiration: YYYY-MM-DD")
    if isinstance(expiration, dt.datetime):
        expiration = expiration.date()
    elif isinstance(expiration, str):
        try:
            expiration = dt.date.fromisoformat(expiration)
        except ValueError:
            raise ComplianceError(f"{where}: waiver {raw['id']!r}: expiration {expiration!r} "
                                  "is not a date", hint="write YYYY-MM-DD") from None
    elif not isinstance(expiration, dt.date):
        raise ComplianceError(f"{where}: waiver {raw['id']!r}: expiration {expiration!r} is "
                              "not a date", hint="write YYYY-MM-DD")
    run = raw.get("run", True)
    if not isinstance(run, bool):
        raise ComplianceError(f"{where}: waiver {raw['id']!r}: run must be true or false",
                              hint="run: true runs the check and reports it as waived")
    return Waiver(raw["id"], raw["justification"].strip(), expiration, run)


def load_waivers(path: str | Path) -> list[Waiver]:
    """Parse a waivers file; anything malformed is a ComplianceError naming the entry."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ComplianceError(f"cannot read waivers file {path}: {exc.strerror}",
                              hint="check --waivers") from None
    data: Any
    if path.suffix in (".yml", ".yaml"):
        try:
            import yaml  # type: ignore[import-untyped]
        except ImportError:
            raise ComplianceError("YAML waivers need pyyaml", hint="pip install "
                                  "'pytest-psdirect[compliance]', or write the file as TOML "
                                  "([[waiver]] tables) or JSON") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ComplianceError(f"{path}: not valid YAML: {exc}", hint="fix the file") from None
    elif path.suffix == ".toml":
        data = tomllib.loads(text).get("waiver", [])
    else:
        data = json.loads(text)
    if isinstance(data, Mapping) and "waivers" in data:
        data = data["waivers"]
    if data is None:
        return []
    if not isinstance(data, list):
        raise ComplianceError(f"{path}: expected a list of waivers", hint="see the README")
    waivers = [_entry(raw, f"{path} entry {i + 1}") for i, raw in enumerate(data)]
    seen: set[str] = set()
    for waiver in waivers:
        if waiver.id in seen:
            raise ComplianceError(f"{path}: waiver {waiver.id!r} is listed twice",
                                  hint="keep one entry per check id")
        seen.add(waiver.id)
    return waivers


def split_expired(waivers: Iterable[Waiver],
                  today: dt.date | None = None) -> tuple[dict[str, Waiver], list[Waiver]]:
    """(active waivers by id, expired ones)."""
    today = today or dt.date.today()
    active, expired = {}, []
    for waiver in waivers:
        if waiver.expired(today):
            expired.append(waiver)
        else:
            active[waiver.id] = waiver
    return active, expired
