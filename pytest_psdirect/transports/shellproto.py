"""Sans-IO framing for a long-lived POSIX shell that runs many commands (no sockets, no threads).

The transport starts ``/bin/sh`` once (local process, SSH exec channel, ``podman exec -i``...) and
moves bytes; this module writes the script lines and finds where each command's output ends.
Every command is sent as ``command eval '<quoted>'`` inside a subshell (isolated: ``cd``/``export``
do not leak) or a brace group (stateful), with stdin from ``/dev/null``, then a marker with a
random per-executor token is printed on stdout (with the exit status) and on stderr. Output is
everything before ``"\\n" + marker``: exact bytes, even without a trailing newline.

Example::

    >>> p = ShellProtocol(token="T")
    >>> cid, script = p.command("echo hi")
    >>> p.feed(STDOUT, b"hi\\n\\nT:1 0\\n")
    []
    >>> done = p.feed(STDERR, b"\\nT:1\\n")
    >>> done[0].stdout, done[0].rc
    (b'hi\\n', 0)
"""

from __future__ import annotations

import re
import secrets
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

STDOUT = 1
STDERR = 2
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def compose(cmd: str, *, env: Mapping[str, str] | None = None, cwd: str | None = None) -> str:
    """Prefix ``cmd`` with a quoted ``cd`` and ``export``s; ``cmd`` itself runs via ``command eval``.

    >>> compose("pwd", env={"A": "x y"}, cwd="/tmp")
    "cd -- /tmp && export A='x y' && command eval pwd"
    """
    steps = []
    if cwd is not None:
        steps.append(f"cd -- {shlex.quote(cwd)} &&")
    for key, value in (env or {}).items():
        if not _ENV_NAME.match(key):
            raise ValueError(f"invalid environment variable name {key!r}")
        steps.append(f"export {key}={shlex.quote(value)} &&")
    steps.append(f"command eval {shlex.quote(cmd)}")
    return " ".join(steps)


def format_command(cmd: str, *args: object) -> str:
    """Fill ``%s`` placeholders with shell-quoted ``args`` (testinfra's convention).

    >>> format_command("ls -l %s", "/tmp/a b; rm -rf /")
    "ls -l '/tmp/a b; rm -rf /'"
    """
    return cmd % tuple(shlex.quote(str(a)) for a in args) if args else cmd


@dataclass(frozen=True)
class Completed:
    """One finished command: its id, exit status and exact output."""

    cid: int
    rc: int
    stdout: bytes
    stderr: bytes


class _Stream:
    """Buffer of one output stream, searched for markers incrementally."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.scanned = 0

    def find(self, marker: bytes) -> int:
        start = max(0, self.scanned - len(marker))
        idx = self.buf.find(marker, start)
        if idx < 0:
            self.scanned = len(self.buf)
        return idx


class ShellProtocol:
    """Builds command scripts and parses framed output of one shell executor."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token or secrets.token_hex(16)
        self._next = 0
        self._pending: int | None = None
        self._out = _Stream()
        self._err = _Stream()
        self._out_done: tuple[int, bytes] | None = None  # rc, stdout of the pending command
        self._err_done: bytes | None = None

    @property
    def busy(self) -> bool:
        """True while a command's markers have not both arrived."""
        return self._pending is not None

    def handshake(self) -> tuple[int, bytes]:
        """Script that reports the shell's PID as the "exit status" of command 0."""
        self._pending = 0
        return 0, self._trailer(0, '"$$"')

    def command(self, cmd: str, *, isolated: bool = True, env: Mapping[str, str] | None = None,
                cwd: str | None = None) -> tuple[int, bytes]:
        """Return ``(cid, script bytes)`` for ``cmd``; values are quoted, never pasted."""
        if self._pending is not None:
            raise RuntimeError("ShellProtocol: previous command still running")
        self._next += 1
        cid = self._next
        self._pending = cid
        body = compose(cmd, env=env, cwd=cwd)
        group = f"( {body}\n)" if isolated else f"{{ {body}\n}}"
        return cid, f"{group} </dev/null; __psd_rc=$?\n".encode() + self._trailer(cid, '"$__psd_rc"')

    def _trailer(self, cid: int, status: str) -> bytes:
        mark = f"{self.token}:{cid}"
        return (f"printf '\\n%s %d\\n' '{mark}' {status}; printf '\\n%s\\n' '{mark}' >&2\n").encode()

    def feed(self, stream: int, data: bytes) -> list[Completed]:
        """Add bytes from ``stream`` (STDOUT/STDERR); return commands completed by them."""
        if stream == STDOUT:
            self._out.buf += data
        else:
            self._err.buf += data
        return self._advance()

    def _advance(self) -> list[Completed]:
        cid = self._pending
        if cid is None:
            return []
        mark = f"\n{self.token}:{cid}".encode()
        if self._out_done is None:
            idx = self._out.find(mark + b" ")
            end = self._out.buf.find(b"\n", idx + len(mark) + 1) if idx >= 0 else -1
            if end >= 0:
                rc = int(self._out.buf[idx + len(mark) + 1:end])
                self._out_done = (rc, bytes(self._out.buf[:idx]))
                del self._out.buf[:end + 1]
                self._out.scanned = 0
        if self._err_done is None:
            idx = self._err.find(mark + b"\n")
            if idx >= 0:
                self._err_done = bytes(self._err.buf[:idx])
                del self._err.buf[:idx + len(mark) + 1]
                self._err.scanned = 0
        if self._out_done is None or self._err_done is None:
            return []
        (rc, out), err = self._out_done, self._err_done
        self._pending, self._out_done, self._err_done = None, None, None
        return [Completed(cid, rc, out, err)]

    def partial(self) -> tuple[bytes, bytes]:
        """Output received so far for the pending command (for timeout errors)."""
        out = self._out_done[1] if self._out_done else bytes(self._out.buf)
        err = self._err_done if self._err_done is not None else bytes(self._err.buf)
        return out, err
