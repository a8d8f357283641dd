"""What a command returns.

Example::

    >>> r = CommandResult(rc=0, stdout_bytes=b"hi\\n", stderr_bytes=b"", duration=0.001, command="echo hi")
    >>> r.stdout, r.succeeded
    ('hi\\n', True)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CommandResult:
    """Exit status, output and wall time of one command. Output is kept as bytes, decoded on read."""

    rc: int
    stdout_bytes: bytes
    stderr_bytes: bytes
    duration: float
    command: str = ""
    target: str = ""
    encoding: str = "utf-8"

    @property
    def stdout(self) -> str:
        """Standard output, decoded (undecodable bytes become U+FFFD)."""
        return self.stdout_bytes.decode(self.encoding, errors="replace")

    @property
    def stderr(self) -> str:
        """Standard error, decoded (undecodable bytes become U+FFFD)."""
        return self.stderr_bytes.decode(self.encoding, errors="replace")

    @property
    def succeeded(self) -> bool:
        """True when ``rc == 0``."""
        return self.rc == 0

    @property
    def failed(self) -> bool:
        """True when ``rc != 0``."""
        return self.rc != 0

    def __repr__(self) -> str:
        return (f"CommandResult(rc={self.rc}, stdout={_clip(self.stdout)!r}, "
                f"stderr={_clip(self.stderr)!r}, duration={self.duration:.4f})")


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else f"{text[:limit]}...[{len(text) - limit} more chars]"
