"""Connection settings shared by every transport, from options, ini keys and URL options.

Example::

    >>> s = Settings(connect_timeout=5)
    >>> s.connect_timeout, s.command_timeout
    (5.0, 300.0)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    """Bounded waits and SSH options. Per-target URL options (``?timeout=``) override these."""

    connect_timeout: float = 10.0
    command_timeout: float = 300.0
    #: per-command cap on stdout + stderr, in bytes; past it the command is killed
    max_output: int = 256 * 1024 * 1024
    ssh_key: str | None = None
    ssh_config: str | None = None
    known_hosts: str | None = None
    insecure_host_keys: bool = False
