"""TOML inventories: named targets with a URL, a credential reference and tags.

Example ``fleet.toml``::

    [defaults]                  # optional; paths are relative to this file
    ssh_key = "keys/id_ed25519"
    known_hosts = "known_hosts"

    [targets.web01]
    url = "ssh://admin@10.0.0.5"
    credential = "file:creds.toml#web"      # or env:PREFIX, keyring:SERVICE
    tags = ["web", "prod"]
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .errors import TargetSpecError
from .settings import validate_timeout
from .targets import Target, parse_target

_DEFAULT_KEYS = {"ssh_key", "ssh_config", "known_hosts", "connect_timeout", "command_timeout"}
_TARGET_KEYS = {"url", "credential", "tags"}
_PATH_KEYS = {"ssh_key", "ssh_config", "known_hosts"}


@dataclass(frozen=True)
class Inventory:
    """Targets and defaults read from one file."""

    path: Path
    targets: tuple[Target, ...]
    defaults: dict[str, str | float]


def load_inventory(path: Path) -> Inventory:
    """Read and check ``path``; errors name the file, the entry and the bad key."""
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise TargetSpecError(f"cannot read inventory {path}: {exc.strerror}",
                              hint="check --inventory") from None
    except tomllib.TOMLDecodeError as exc:
        raise TargetSpecError(f"inventory {path} is not valid TOML: {exc}",
                              hint="see the inventory example in the README") from None
    unknown = set(data) - {"defaults", "targets"}
    if unknown:
        raise TargetSpecError(f"inventory {path}: unknown section(s) {sorted(unknown)}",
                              hint="use [defaults] and [targets.NAME]")
    base = path.parent.resolve()
    defaults = _defaults(path, data.get("defaults", {}), base)
    entries = data.get("targets", {})
    if not entries:
        raise TargetSpecError(f"inventory {path} has no [targets.NAME] entries",
                              hint='add [targets.web01] with url = "ssh://user@host"')
    targets = tuple(_target(path, name, entry, base) for name, entry in entries.items())
    return Inventory(path=path, targets=targets, defaults=defaults)


def _defaults(path: Path, raw: object, base: Path) -> dict[str, str | float]:
    if not isinstance(raw, dict) or set(raw) - _DEFAULT_KEYS:
        bad = sorted(set(raw) - _DEFAULT_KEYS) if isinstance(raw, dict) else raw
        raise TargetSpecError(f"inventory {path}: bad [defaults] key(s) {bad}",
                              hint=f"known keys: {', '.join(sorted(_DEFAULT_KEYS))}")
    out: dict[str, str | float] = {}
    for key, value in raw.items():
        where = f"inventory {path}: [defaults] {key}"
        if key in _PATH_KEYS:
            full = base / os.path.expanduser(str(value))
            if not full.is_file():
                raise TargetSpecError(f"{where} = {value!r}: no such file ({full})",
                                      hint="paths in an inventory are relative to its folder")
            out[key] = str(full)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            try:
                out[key] = validate_timeout(value, key)
            except ValueError as exc:
                raise TargetSpecError(f"{where}: {exc}",
                                      hint=f"{key} = 10 (seconds, at most 7 days)") from None
        else:
            raise TargetSpecError(f"{where} must be a number of seconds, not {value!r}",
                                  hint=f"{key} = 10")
    return out


def _target(path: Path, name: str, entry: object, base: Path) -> Target:
    where = f"inventory {path} [targets.{name}]"
    if not isinstance(entry, dict):
        raise TargetSpecError(f"{where} is not a table", hint='write url = "ssh://user@host"')
    unknown = set(entry) - _TARGET_KEYS
    if unknown:
        raise TargetSpecError(f"{where}: unknown key(s) {sorted(unknown)}",
                              hint=f"known keys: {', '.join(sorted(_TARGET_KEYS))}")
    if not isinstance(entry.get("url"), str):
        raise TargetSpecError(f"{where} has no url", hint='add url = "ssh://user@host"')
    tags = entry.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise TargetSpecError(f"{where}: tags must be a list of strings", hint='tags = ["web"]')
    ref = entry.get("credential")
    if ref is not None and not isinstance(ref, str):
        raise TargetSpecError(f"{where}: credential must be a string reference",
                              hint='credential = "file:creds.toml#web" (never the password itself)')
    if ref is not None and ref.startswith("file:"):
        ref = f"file:{base / os.path.expanduser(ref[5:])}"  # an absolute path stays as it is
    try:
        return parse_target(entry["url"], name=name, tags=frozenset(tags), credential_ref=ref)
    except TargetSpecError as exc:
        raise TargetSpecError(f"{where}: {exc.message}", hint=exc.hint) from None
