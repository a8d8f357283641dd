"""PowerShell invocations as data: a script, positional arguments and named parameters.

Values are never pasted into script text: they travel as PSRP arguments/parameters. When named
parameters are given and the script declares no ``param()`` block, one naming them (names only,
checked to be identifiers) is put in front, so ``"Get-Service -Name $Name"`` with ``Name=...`` binds.

Example::

    >>> inv = build_invocation("Get-Service -Name $Name", (), {"Name": "W3SVC"})
    >>> inv.script
    'param($Name)\\nGet-Service -Name $Name'
    >>> inv.params
    {'Name': 'W3SVC'}
    >>> build_invocation("param([string]$Name) $Name", (), {"Name": "x"}).script
    'param([string]$Name) $Name'
    >>> build_invocation("$x", (), {"bad name": 1})
    Traceback (most recent call last):
    ...
    ValueError: PowerShell parameter name 'bad name' is not an identifier (letters, digits, _)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_INT64 = (-(2**63), 2**63 - 1)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# a param() block at the top, after comments, #requires lines and attributes such as [CmdletBinding()]
_HAS_PARAM = re.compile(r"^(?:\s|#[^\n]*\n|<#.*?#>|\[[^\]]*\])*param\s*\(", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class Invocation:
    """What an engine runs: ``script`` with ``args`` (positional) and ``params`` (named)."""

    script: str
    args: tuple[Any, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)


def build_invocation(script: str, args: Sequence[Any], params: Mapping[str, Any]) -> Invocation:
    """Check names and text, add a ``param()`` block for named parameters when there is none."""
    if not isinstance(script, str) or not script.strip():
        raise ValueError("the PowerShell script is empty")
    if "\x00" in script:
        raise ValueError("the PowerShell script contains a NUL character")
    for name in params:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"PowerShell parameter name {name!r} is not an identifier "
                             "(letters, digits, _)")
    for value in (*args, *params.values()):
        _check_value(value)
    if params and not _HAS_PARAM.match(script):
        script = "param(" + ", ".join(f"${name}" for name in params) + ")\n" + script
    return Invocation(script, tuple(args), dict(params))


def _check_value(value: Any, depth: int = 0) -> None:
    """Refuse values PowerShell cannot receive before anything is sent (the session stays usable).

    >>> _check_value([1, {"a": -2**63}])
    >>> _check_value({"n": 2**64})
    Traceback (most recent call last):
    ...
    ValueError: PowerShell value 18446744073709551616 does not fit an Int64; pass it as a string
    """
    if depth > 64:
        raise ValueError("PowerShell value nests more than 64 levels deep")
    if isinstance(value, int) and not isinstance(value, bool) and \
            not _INT64[0] <= value <= _INT64[1]:
        raise ValueError(f"PowerShell value {value} does not fit an Int64; pass it as a string")
    if isinstance(value, set | frozenset):
        raise ValueError(f"PowerShell has no set type: pass a list instead of {value!r:.60}")
    if isinstance(value, list | tuple):
        for item in value:
            _check_value(item, depth + 1)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _check_value(key, depth + 1)
            _check_value(item, depth + 1)


def from_file(path: str | Path, args: Sequence[Any], params: Mapping[str, Any]) -> Invocation:
    """``Invoke-Command -FilePath`` style: the local .ps1's text runs remotely, values as data."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ValueError(f"cannot read PowerShell script {path}: {exc.strerror}") from None
    return build_invocation(text, args, params)
