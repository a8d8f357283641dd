"""Sans-IO protocol between the controller and the command agent (``agent.py``) on a target.

Requests are one JSON object per line; ``run`` requests with different ids run concurrently.
Frames back are an ASCII header ``KIND ID LENGTH\\n`` followed by exactly ``LENGTH`` payload
bytes, so output needs no escaping and no marker scanning: a command can print anything (binary,
fake headers) without confusing the framing.

Kinds: ``H`` hello (JSON: pid, shell, python), ``S`` started (the command's PID = its process
group, in ASCII), ``1``/``2`` a chunk of stdout/stderr, ``X`` exit (JSON: rc (-1 when killed by
a signal), signal, why = exit | timeout | limit | killed | spawn | busy (that id is running
already), msg, groups = the process groups the agent started that still have members, e.g.
background jobs).

Example::

    >>> p = FrameParser()
    >>> p.feed(b"1 7 3\\nhi\\n")
    [Frame(kind='1', cid=7, payload=b'hi\\n')]
    >>> p.feed(b"X 7 ") + p.feed(b'9\\n{"rc": 0}')
    [Frame(kind='X', cid=7, payload=b'{"rc": 0}')]
    >>> run_request(1, "echo hi", timeout=5, limit=100)
    b'{"op": "run", "id": 1, "cmd": "echo hi", "timeout": 5.0, "max": 100}\\n'
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..settings import validate_timeout

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HEADER = re.compile(rb"^([HSX12]) (\d{1,12}) (\d{1,12})$")


class ProtocolError(Exception):
    """The agent sent something that is not a frame (a broken or foreign peer)."""


@dataclass(frozen=True)
class Frame:
    """One message from the agent."""

    kind: str
    cid: int
    payload: bytes

    def json(self) -> dict[str, object]:
        """The payload of an ``H``/``S``/``X`` frame as a dict."""
        value = json.loads(self.payload.decode("utf-8"))
        if not isinstance(value, dict):
            raise ProtocolError(f"frame {self.kind} {self.cid}: payload is not an object")
        return value


class FrameParser:
    """Turns the agent's byte stream, however chunked, into frames."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._header: tuple[str, int, int] | None = None

    def feed(self, data: bytes) -> list[Frame]:
        """Add bytes; return the frames they complete."""
        self._buf += data
        frames: list[Frame] = []
        while True:
            if self._header is None:
                end = self._buf.find(b"\n")
                if end < 0:
                    if len(self._buf) > 64:
                        raise ProtocolError(f"not a frame header: {bytes(self._buf[:64])!r}")
                    return frames
                match = _HEADER.match(bytes(self._buf[:end]))
                if match is None:
                    raise ProtocolError(f"not a frame header: {bytes(self._buf[:end][:64])!r}")
                self._header = (match[1].decode(), int(match[2]), int(match[3]))
                del self._buf[:end + 1]
            kind, cid, size = self._header
            if len(self._buf) < size:
                return frames
            frames.append(Frame(kind, cid, bytes(self._buf[:size])))
            del self._buf[:size]
            self._header = None


def check_text(value: str, what: str) -> str:
    """Refuse text that cannot reach a POSIX process intact (NUL, lone surrogates).

    >>> check_text("a\\x00b", "argument")
    Traceback (most recent call last):
    ...
    ValueError: argument contains a NUL character, which no command line can carry: 'a\\x00b'
    """
    if not isinstance(value, str):
        raise TypeError(f"{what} must be str, not {type(value).__name__}")
    if "\x00" in value:
        raise ValueError(f"{what} contains a NUL character, which no command line can carry: "
                         f"{value[:80]!r}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{what} holds a lone surrogate {value[exc.start:exc.end]!r} at "
                         f"index {exc.start}: it cannot be encoded as UTF-8") from None
    return value


@dataclass(frozen=True)
class RunSpec:
    """A command with its checked values (:func:`run_spec`): what a run request carries."""

    cmd: str
    timeout: float
    env: dict[str, str]
    cwd: str | None = None


def run_spec(cmd: str, *, timeout: float, env: Mapping[str, str] | None = None,
             cwd: str | None = None) -> RunSpec:
    """Check every value once, before anything is sent (a bad one raises ValueError)."""
    check_text(cmd, "command")
    clean_env = {}
    for key, value in (env or {}).items():
        if not isinstance(key, str) or not _ENV_NAME.match(key):
            raise ValueError(f"invalid environment variable name {key!r}: use letters, digits "
                             "and _, not starting with a digit")
        clean_env[key] = check_text(value, f"environment variable {key}")
    return RunSpec(cmd, validate_timeout(timeout, "timeout"), clean_env,
                   None if cwd is None else check_text(cwd, "cwd"))


def encode_run(cid: int, spec: RunSpec, limit: int) -> bytes:
    """The request line of an already checked command."""
    request: dict[str, object] = {"op": "run", "id": cid, "cmd": spec.cmd,
                                  "timeout": spec.timeout, "max": int(limit)}
    if spec.env:
        request["env"] = spec.env
    if spec.cwd is not None:
        request["cwd"] = spec.cwd
    return json.dumps(request).encode("ascii") + b"\n"


def run_request(cid: int, cmd: str, *, timeout: float, limit: int,
                env: Mapping[str, str] | None = None, cwd: str | None = None) -> bytes:
    """Check and encode a run request in one step."""
    return encode_run(cid, run_spec(cmd, timeout=timeout, env=env, cwd=cwd), limit)


def kill_request(cid: int) -> bytes:
    """Ask the agent to kill command ``cid`` (its whole process group)."""
    return json.dumps({"op": "kill", "id": cid}).encode("ascii") + b"\n"


def ping_request() -> bytes:
    """A keepalive: the agent ends itself after 45 s without hearing from the controller."""
    return b'{"op": "ping", "id": 0}\n'


def agent_source() -> bytes:
    """The agent program, as sent to targets."""
    return (Path(__file__).parent / "agent.py").read_bytes()


def bootstrap_code(size: int) -> str:
    """Python code for ``python3 -c``: read ``size`` bytes of agent source from stdin, run it.

    No quotes but single ones and no ``$``, so it survives any login shell in double quotes.
    """
    return (f"import os;b=b'';exec('while len(b)<{size}:b+=os.read(0,{size}-len(b)) or "
            f"os._exit(3)');exec(compile(b,'psdirect-agent','exec'))")


def bootstrap_command(size: int, python: str = "python3") -> str:
    """The remote command that starts the agent through the account's login shell (``-S``: the
    agent needs only the standard library; skipping ``site`` saves ~30 ms of each session open)."""
    return f'exec {python} -S -c "{bootstrap_code(size)}"'
