"""The guest agent's commands, typed: guest-exec and its status, guest-file-*, guest-ping.

Example (``channel`` from :mod:`.channel`)::

    >>> agent = GuestAgent(channel)                                  # doctest: +SKIP
    >>> pid = agent.exec("/bin/sh", ["-c", "echo hi"], timeout=5)    # doctest: +SKIP
    >>> agent.wait(pid, deadline=time.monotonic() + 5).stdout        # doctest: +SKIP
    b'hi\\n'
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from typing import Any

from .channel import Channel

#: bytes per guest-file-read/write call (base64 makes the JSON line a third longer)
CHUNK = 1 << 20
#: the agent keeps at most this much of each captured stream (QEMU's GUEST_EXEC_MAX_OUTPUT)
AGENT_OUTPUT_LIMIT = 16 * 1024**2
#: longest pause between two guest-exec-status polls
MAX_POLL = 0.05


@dataclass(frozen=True)
class ExecStatus:
    """guest-exec-status: ``exited``; exit code or signal; the captured output."""

    exited: bool
    exitcode: int | None = None
    signal: int | None = None
    stdout: bytes = b""
    stderr: bytes = b""
    truncated: bool = False

    @property
    def rc(self) -> int:
        """The exit code; -1 for a process ended by a signal (as testinfra's SSH backends)."""
        return -1 if self.signal is not None or self.exitcode is None else self.exitcode


def _status(value: dict[str, Any]) -> ExecStatus:
    return ExecStatus(bool(value.get("exited")), value.get("exitcode"), value.get("signal"),
                      base64.b64decode(value.get("out-data", "")),
                      base64.b64decode(value.get("err-data", "")),
                      bool(value.get("out-truncated") or value.get("err-truncated")))


def poll_delay(elapsed: float) -> float:
    """Pause before the next status poll: 2 ms, growing with the time already waited (at most
    ~10% overshoot), never more than :data:`MAX_POLL`.

    >>> poll_delay(0.0), poll_delay(0.1), poll_delay(10.0)
    (0.002, 0.012, 0.05)
    """
    return round(min(0.002 + elapsed * 0.1, MAX_POLL), 6)


class GuestAgent:
    """Calls on one agent channel; every call bounded by its ``timeout``."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel

    def ping(self, *, timeout: float) -> None:
        self.channel.call("guest-ping", timeout=timeout)

    def exec(self, path: str, args: list[str], *, timeout: float,
             input_data: bytes | None = None) -> int:
        """Start ``path`` with ``args`` (argv as data; PATH is searched), output captured; its PID."""
        arguments: dict[str, Any] = {"path": path, "arg": args, "capture-output": True}
        if input_data:
            arguments["input-data"] = base64.b64encode(input_data).decode()
        pid = self.channel.call("guest-exec", arguments, timeout=timeout)["pid"]
        return int(pid)

    def status(self, pid: int, *, timeout: float) -> ExecStatus:
        return _status(self.channel.call("guest-exec-status", {"pid": pid}, timeout=timeout))

    def wait(self, pid: int, *, deadline: float, call_timeout: float) -> ExecStatus | None:
        """Poll until ``pid`` has exited and its pipes closed; None at ``deadline``."""
        start = time.monotonic()
        while True:
            state = self.status(pid, timeout=call_timeout)
            if state.exited:
                return state
            now = time.monotonic()
            if now >= deadline:
                return None
            time.sleep(min(poll_delay(now - start), deadline - now))

    def run(self, path: str, args: list[str], *, timeout: float) -> ExecStatus | None:
        """exec + wait: the finished status, or None after ``timeout`` (the process runs on)."""
        deadline = time.monotonic() + timeout
        pid = self.exec(path, args, timeout=timeout)
        return self.wait(pid, deadline=deadline, call_timeout=timeout)

    # -- files ----------------------------------------------------------------------------------
    def open(self, path: str, mode: str, *, timeout: float) -> int:
        return int(self.channel.call("guest-file-open", {"path": path, "mode": mode},
                                     timeout=timeout))

    def read(self, handle: int, *, timeout: float, count: int = CHUNK) -> tuple[bytes, bool]:
        """Up to ``count`` bytes and whether the end of the file was reached."""
        value = self.channel.call("guest-file-read", {"handle": handle, "count": count},
                                  timeout=timeout)
        return base64.b64decode(value.get("buf-b64", "")), bool(value.get("eof"))

    def write(self, handle: int, data: bytes, *, timeout: float) -> None:
        value = self.channel.call("guest-file-write", {"handle": handle,
                                                       "buf-b64": base64.b64encode(data).decode()},
                                  timeout=timeout)
        if int(value.get("count", -1)) != len(data):
            raise OSError(f"the agent wrote {value.get('count')} of {len(data)} bytes")

    def close_file(self, handle: int, *, timeout: float) -> None:
        self.channel.call("guest-file-close", {"handle": handle}, timeout=timeout)
