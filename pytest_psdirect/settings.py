"""Connection settings shared by every transport, from options, ini keys and URL options.

Every timeout and size is checked by one function each, whatever its source (option, ini key,
inventory, URL, API), so a bad value is refused the same way everywhere.

Example::

    >>> s = Settings(connect_timeout=5)
    >>> s.connect_timeout, s.command_timeout, s.max_output
    (5.0, 300.0, 268435456)
    >>> Settings(command_timeout=float("inf"))
    Traceback (most recent call last):
    ...
    ValueError: command_timeout=inf must be a finite number of seconds
    >>> validate_timeout("2.5", "?timeout=")
    2.5
    >>> parse_size("256M"), parse_size("1G"), parse_size("1048576")
    (268435456, 1073741824, 1048576)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

#: Longest accepted timeout: 7 days. A gate that waits longer on one command is hung, not slow,
#: and values past this (``1e10``, ``1e309``) overflow the clocks and ``select`` calls they feed.
MAX_TIMEOUT = 7 * 24 * 3600.0
#: Default cap on one command's stdout + stderr, in bytes.
DEFAULT_MAX_OUTPUT = 256 * 1024**2
#: Largest accepted output cap (1 TiB): enough for anything a test can assert on.
MAX_OUTPUT_LIMIT = 1024**4
_SIZE = re.compile(r"^\s*(\d+)\s*([KMGT]?)(?:i?B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def validate_timeout(value: object, name: str) -> float:
    """Return ``value`` as seconds, or raise ``ValueError`` naming ``name`` and the bad value.

    Accepts numbers and numeric strings that are finite, > 0 and at most :data:`MAX_TIMEOUT`.
    ``nan`` would mean "no bound at all" and ``inf`` or ``1e10`` hang a run, so both are refused.

    >>> validate_timeout(10, "--psdirect-connect-timeout")
    10.0
    >>> validate_timeout("nan", "timeout")
    Traceback (most recent call last):
    ...
    ValueError: timeout='nan' must be a finite number of seconds
    >>> validate_timeout(-1, "ini psdirect_command_timeout")
    Traceback (most recent call last):
    ...
    ValueError: ini psdirect_command_timeout=-1 must be more than 0 seconds
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{name}={value!r} is not a number of seconds")
    try:
        seconds = float(value)
    except (ValueError, OverflowError):
        raise ValueError(f"{name}={value!r} is not a number of seconds") from None
    if not math.isfinite(seconds):
        raise ValueError(f"{name}={value!r} must be a finite number of seconds")
    if seconds <= 0:
        raise ValueError(f"{name}={value!r} must be more than 0 seconds")
    if seconds > MAX_TIMEOUT:
        raise ValueError(f"{name}={value!r} is more than {MAX_TIMEOUT:g} seconds (7 days)")
    return seconds


def parse_size(value: object, name: str = "size") -> int:
    """Return a byte count from ``1048576``, ``64K``, ``256M``, ``1G`` (binary units, ``MiB``/``MB``
    accepted as the same), or raise ``ValueError`` naming ``name``.

    >>> parse_size("64KiB")
    65536
    >>> parse_size("lots", "--psdirect-max-output")
    Traceback (most recent call last):
    ...
    ValueError: --psdirect-max-output='lots' is not a size (write 1048576, 256M or 1G)
    """
    if isinstance(value, int) and not isinstance(value, bool):
        count = value
    else:
        match = _SIZE.match(value) if isinstance(value, str) else None
        if not match:
            raise ValueError(f"{name}={value!r} is not a size (write 1048576, 256M or 1G)")
        count = int(match.group(1)) * _UNITS[match.group(2).upper()]
    if count <= 0:
        raise ValueError(f"{name}={value!r} must be more than 0 bytes")
    if count > MAX_OUTPUT_LIMIT:
        raise ValueError(f"{name}={value!r} is more than 1T")
    return count


@dataclass(frozen=True)
class Settings:
    """Bounded waits, output cap and SSH options. Per-target URL options (``?timeout=``)
    override these. Timeouts are in seconds, ``max_output`` in bytes (stdout + stderr of one
    command)."""

    connect_timeout: float = 10.0
    command_timeout: float = 300.0
    ssh_key: str | None = None
    ssh_config: str | None = None
    known_hosts: str | None = None
    insecure_host_keys: bool = False
    max_output: int = DEFAULT_MAX_OUTPUT

    def __post_init__(self) -> None:
        for name in ("connect_timeout", "command_timeout"):
            object.__setattr__(self, name, validate_timeout(getattr(self, name), name))
        object.__setattr__(self, "max_output", parse_size(self.max_output, "max_output"))
