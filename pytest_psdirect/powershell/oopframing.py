"""The OutOfProc framing of PSRP (PowerShell's ``OutOfProcTransportManager``), sans-IO.

``pwsh -s``, the SSH ``powershell`` subsystem, ``docker exec -i ... pwsh -s`` and PowerShell
Direct's socket all carry PSRP fragments as one XML element per line::

    <Data Stream='Default' PSGuid='...'>base64 of PSRP fragments</Data>
    <DataAck PSGuid='...' />       the server processed one Data packet (flow control)
    <Command PSGuid='...' />        create a pipeline (CommandAck replies)
    <Signal PSGuid='...' />         stop a pipeline (SignalAck replies)
    <Close PSGuid='...' />          close a pipeline, or the pool with the empty GUID (CloseAck)

psrpcore 0.3 has no helpers for this (it produces and consumes the PSRP fragments only), so they
live here, shared by the engine and the test server. The empty GUID means "the runspace pool".

Example::

    >>> packet = data_packet(b"\\x01\\x02", None)
    >>> packet
    b"<Data Stream='Default' PSGuid='00000000-0000-0000-0000-000000000000'>AQI=</Data>\\n"
    >>> parser = PacketParser()
    >>> [(p.tag, p.guid, p.data) for p in parser.feed(packet + guid_packet("DataAck", None))]
    [('Data', None, b'\\x01\\x02'), ('DataAck', None, b'')]
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

EMPTY_GUID = uuid.UUID(int=0)
TAGS = frozenset({"Data", "DataAck", "Command", "CommandAck", "Close", "CloseAck", "Signal",
                  "SignalAck"})
_MAX_LINE = 64 << 20  # a line longer than this is not PSRP (the peer prints something else)
_PACKET = re.compile(
    rb"^\s*<(?P<tag>[A-Za-z]+)(?:\s+Stream='(?P<stream>\w+)')?\s+PSGuid='(?P<guid>[0-9a-fA-F-]{36})'"
    rb"\s*(?:/>|>(?P<data>[A-Za-z0-9+/=\s]*)</Data>)\s*$")


class FramingError(ValueError):
    """The peer wrote something that is not an OutOfProc packet (``line`` is its start)."""

    def __init__(self, message: str, line: bytes) -> None:
        super().__init__(message)
        self.line = line


@dataclass(frozen=True)
class Packet:
    """One OutOfProc packet; ``guid`` is None for the runspace pool (the empty GUID)."""

    tag: str
    guid: uuid.UUID | None
    stream: str = "Default"
    data: bytes = b""


def _guid_text(guid: uuid.UUID | None) -> bytes:
    return str(guid or EMPTY_GUID).encode()


def data_packet(data: bytes, guid: uuid.UUID | None, *, stream: str = "Default") -> bytes:
    """``<Data Stream=... PSGuid=...>base64</Data>`` plus the newline."""
    return (b"<Data Stream='" + stream.encode() + b"' PSGuid='" + _guid_text(guid) + b"'>"
            + base64.b64encode(data) + b"</Data>\n")


def guid_packet(tag: str, guid: uuid.UUID | None) -> bytes:
    """``<Tag PSGuid='...' />`` plus the newline (DataAck, Command, Close, Signal and acks)."""
    if tag not in TAGS or tag == "Data":
        raise ValueError(f"not an OutOfProc GUID packet: {tag!r}")
    return b"<" + tag.encode() + b" PSGuid='" + _guid_text(guid) + b"' />\n"


def parse_line(line: bytes) -> Packet:
    """Parse one line (without its newline); raise :class:`FramingError` if it is not a packet."""
    match = _PACKET.match(line)
    if match is None or match["tag"].decode() not in TAGS:
        raise FramingError("not an OutOfProc PSRP packet", line[:200])
    tag = match["tag"].decode()
    if (tag == "Data") != (match["data"] is not None):
        raise FramingError(f"malformed {tag} packet", line[:200])
    guid = uuid.UUID(match["guid"].decode())
    data = b""
    if match["data"] is not None:
        try:
            data = base64.b64decode(match["data"], validate=False)
        except binascii.Error:
            raise FramingError("bad base64 in a Data packet", line[:200]) from None
    stream = (match["stream"] or b"Default").decode()
    return Packet(tag, None if guid == EMPTY_GUID else guid, stream, data)


class PacketParser:
    """Splits a byte stream into packets; keeps a partial line until its newline arrives."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> Iterator[Packet]:
        """Yield every complete packet in what has arrived so far."""
        self._buffer += data
        start = 0
        try:
            while (end := self._buffer.find(b"\n", start)) >= 0:
                line = bytes(self._buffer[start:end]).rstrip(b"\r")
                start = end + 1
                if line.strip():
                    yield parse_line(line)
        finally:
            del self._buffer[:start]
        if len(self._buffer) > _MAX_LINE:
            raise FramingError("a line of more than 64 MiB without a newline",
                               bytes(self._buffer[:200]))
