"""The JSON line protocol QMP and the QEMU guest agent share, sans-IO: bytes in, messages out.

A request is one JSON object per line; a reply is ``{"return": ...}`` or ``{"error": {"class":
..., "desc": ...}}``; QMP also sends ``{"event": ...}`` lines, which callers skip. The guest agent
has no greeting and may hold a half-read request or a stale reply from an earlier client, so
every (re)connect starts with a ``0xFF`` byte (the agent drops what it had read) and
``guest-sync-delimited`` with a fresh id, whose reply comes after a ``0xFF`` byte: everything
before that byte is stale and dropped.

Example::

    >>> lines = JSONLines()
    >>> lines.resync()
    >>> lines.feed(b'{"return": 7}\\n\\xff{"return": 42}\\n{"ret')
    [{'return': 42}]
    >>> lines.feed(b'urn": {}}\\n')
    [{'return': {}}]
    >>> encode("guest-exec-status", {"pid": 12})
    b'{"execute": "guest-exec-status", "arguments": {"pid": 12}}\\n'
    >>> try:
    ...     reply_value({"error": {"class": "GenericError", "desc": "no such pid"}}, "guest-exec")
    ... except AgentError as exc:
    ...     print(exc)
    guest-exec: GenericError: no such pid
"""

from __future__ import annotations

import json
from typing import Any

#: the agent's delimiter byte: sent to reset its parser, and before a guest-sync-delimited reply
DELIMITER = b"\xff"
#: longest reply line accepted (the agent returns up to 16 MiB of each stream, base64-encoded)
MAX_LINE = 64 * 1024**2


class AgentError(Exception):
    """The agent (or QMP) answered with an error object: ``error_class`` and ``desc``."""

    def __init__(self, command: str, error_class: str, desc: str) -> None:
        self.command = command
        self.error_class = error_class
        self.desc = desc
        super().__init__(f"{command}: {error_class}: {desc}")


class ProtocolError(Exception):
    """A reply that is not a JSON object line, or a line longer than :data:`MAX_LINE`."""


def encode(command: str, arguments: dict[str, Any] | None = None) -> bytes:
    """One request line; non-ASCII is escaped so the line is plain ASCII."""
    request: dict[str, Any] = {"execute": command}
    if arguments:
        request["arguments"] = arguments
    return json.dumps(request).encode("ascii") + b"\n"


def reply_value(message: dict[str, Any], command: str) -> Any:
    """The ``return`` value of a reply, or :class:`AgentError` for an ``error`` reply."""
    if "error" in message:
        error = message["error"] if isinstance(message["error"], dict) else {}
        raise AgentError(command, str(error.get("class", "Error")), str(error.get("desc", "")))
    if "return" not in message:
        raise ProtocolError(f"{command}: reply without return or error: {str(message)[:200]}")
    return message["return"]


class JSONLines:
    """Splits received bytes into JSON messages; after :meth:`resync`, bytes up to the next
    delimiter (``0xFF``) are dropped."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._syncing = False

    def resync(self) -> None:
        """Drop everything until the next ``0xFF`` (the guest-sync-delimited reply's prefix)."""
        self._buffer.clear()
        self._syncing = True

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """Add ``data``; return every complete message (QMP events included)."""
        self._buffer += data
        out: list[dict[str, Any]] = []
        while True:
            if self._syncing:
                at = self._buffer.find(DELIMITER)
                if at < 0:
                    self._buffer.clear()
                    return out
                del self._buffer[:at + 1]
                self._syncing = False
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > MAX_LINE:
                    raise ProtocolError(f"a reply line is longer than {MAX_LINE} bytes")
                return out
            line = bytes(self._buffer[:end]).strip().lstrip(DELIMITER)
            del self._buffer[:end + 1]
            if not line:
                continue
            try:
                message = json.loads(line)
            except ValueError:
                raise ProtocolError(f"not JSON: {line[:200]!r}") from None
            if not isinstance(message, dict):
                raise ProtocolError(f"not a JSON object: {line[:200]!r}")
            out.append(message)
