"""Channels to QMP and the QEMU guest agent: a unix socket QEMU serves, or ``virsh`` for a
libvirt domain. Every call is bounded; a call that times out leaves the channel closed (its
reply may still come), so the next one reconnects and resynchronises.

Example (a VM started by :mod:`.machine`)::

    >>> agent = SocketChannel("/run/vm/qga.sock", label="qemu://web01", kind="qga")  # doctest: +SKIP
    >>> agent.open(timeout=5); agent.call("guest-ping", timeout=5)    # doctest: +SKIP
    {}
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import subprocess
import time
from typing import Any, Literal, Protocol

from ...errors import ConnectFailed, GuestNotReady, SessionBroken, VMNotFound
from .protocol import DELIMITER, AgentError, JSONLines, ProtocolError, encode, reply_value

log = logging.getLogger(__name__)
_READ = 1 << 20
NOT_FOUND_HINT = ("start it (psdirect lab up --vm, --vm-start, --vm-provision), give the agent's "
                  "socket with ?qga=PATH, or name a libvirt domain with "
                  "?connect=qemu:///system (or qemu:///session)")
SILENT_HINT = ("the guest may still be booting, or qemu-ga is not running in it (look at the "
               "VM's console log); QEMU serves one client per agent socket at a time, so "
               "another program connected to it also blocks us")


class Channel(Protocol):
    """What the guest agent and QMP code needs: bounded request/reply calls."""

    label: str
    #: bytes per guest-file-read/write call on this channel
    chunk: int

    def call(self, command: str, arguments: dict[str, Any] | None = None, *,
             timeout: float) -> Any:
        """Send ``command``; its ``return`` value, :class:`AgentError` for an error reply."""

    @property
    def alive(self) -> bool:
        """False once the channel is known to be unusable."""

    def close(self) -> None:
        """Disconnect (idempotent)."""


class SocketChannel:
    """QMP (``kind="qmp"``: greeting, then ``qmp_capabilities``) or the guest agent
    (``kind="qga"``: ``0xFF`` + ``guest-sync-delimited``) on a unix socket QEMU listens on."""

    chunk = 1 << 20

    def __init__(self, path: str, *, label: str, kind: Literal["qga", "qmp"]) -> None:
        self.path = path
        self.label = label
        self.kind = kind
        self._sock: socket.socket | None = None
        self._lines = JSONLines()
        self._pending: list[dict[str, Any]] = []

    @property
    def alive(self) -> bool:
        return self._sock is not None

    def open(self, timeout: float) -> None:
        """Connect and synchronise within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(self.path)
        except FileNotFoundError:
            sock.close()
            raise VMNotFound(f"no QEMU VM there: {self.path} does not exist", target=self.label,
                             hint=NOT_FOUND_HINT) from None
        except (ConnectionRefusedError, TimeoutError) as exc:
            sock.close()
            raise GuestNotReady(f"QEMU is not running: nothing accepts connections on {self.path}"
                                f" ({exc.strerror or 'timed out'})", target=self.label,
                                hint="start the VM (--vm-start), or remove its stale folder") \
                from None
        except OSError as exc:
            sock.close()
            raise ConnectFailed(f"cannot connect to {self.path}: {exc.strerror or exc}",
                                target=self.label, hint="check the path and its permissions") \
                from None
        self._sock, self._lines, self._pending = sock, JSONLines(), []
        try:
            if self.kind == "qmp":
                self._receive(deadline, "the QMP greeting")
                self.call("qmp_capabilities", timeout=max(0.1, deadline - time.monotonic()))
            else:
                self.sync(max(0.1, deadline - time.monotonic()))
        except BaseException:
            self.close()
            raise

    def sync(self, timeout: float) -> None:
        """``0xFF`` + ``guest-sync-delimited`` with a random id; stale bytes before are dropped."""
        token = secrets.randbelow(2**31)
        deadline = time.monotonic() + timeout
        self._lines.resync()
        self._pending.clear()
        self._send(DELIMITER + encode("guest-sync-delimited", {"id": token}))
        while True:  # replies meant for an earlier client (its sync, its commands) come first
            message = self._receive(deadline, "guest-sync-delimited")
            if message.get("return") == token:
                return

    def call(self, command: str, arguments: dict[str, Any] | None = None, *,
             timeout: float) -> Any:
        if self._sock is None:
            raise SessionBroken("the connection to QEMU is closed", target=self.label)
        deadline = time.monotonic() + timeout
        self._send(encode(command, arguments))
        while True:
            message = self._receive(deadline, command)
            if "event" not in message:
                return reply_value(message, command)

    def _send(self, data: bytes) -> None:
        assert self._sock is not None
        try:
            self._sock.sendall(data)
        except OSError as exc:
            self.close()
            raise SessionBroken(f"the connection to QEMU broke: {exc}", target=self.label) from None

    def _receive(self, deadline: float, what: str) -> dict[str, Any]:
        while not self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._sock is None:
                self.close()
                raise GuestNotReady(f"no answer to {what} within the time allowed",
                                    target=self.label, hint=SILENT_HINT)
            self._sock.settimeout(remaining)
            try:
                data = self._sock.recv(_READ)
            except TimeoutError:
                continue
            except OSError as exc:
                self.close()
                raise SessionBroken(f"the connection to QEMU broke: {exc}",
                                    target=self.label) from None
            if not data:
                self.close()
                raise SessionBroken(f"QEMU closed the connection during {what} (the VM stopped?)",
                                    target=self.label)
            try:
                self._pending += self._lines.feed(data)
            except ProtocolError as exc:
                self.close()
                raise SessionBroken(f"garbled reply from QEMU: {exc}", target=self.label) from None
        return self._pending.pop(0)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class VirshChannel:
    """The guest agent of a libvirt domain through ``virsh qemu-agent-command`` (libvirt does
    the guest-sync itself). The request goes on virsh's stdin, never in its argv. Files move in
    32 KiB chunks here: with libvirt 9.0 a 200 KB guest-file-write through virsh failed with
    "Guest agent not available for now" (100 KB passed), and every call is a virsh process."""

    chunk = 32 * 1024

    def __init__(self, uri: str, domain: str, *, label: str) -> None:
        self.uri = uri
        self.domain = domain
        self.label = label

    @property
    def alive(self) -> bool:
        return True

    def call(self, command: str, arguments: dict[str, Any] | None = None, *,
             timeout: float) -> Any:
        request = encode(command, arguments).decode().strip().replace("'", "\\u0027")
        wait = max(1, int(timeout + 0.999))
        # virsh reads commands from stdin: single quotes take the JSON verbatim (it has none)
        script = (f"qemu-agent-command --domain {_virsh_quote(self.domain)} --timeout {wait} "
                  f"'{request}'\n")
        try:
            done = subprocess.run(["virsh", "-q", "-c", self.uri], input=script.encode(),
                                  capture_output=True, timeout=timeout + 10, check=False,
                                  env={**os.environ, "LC_ALL": "C"})
        except FileNotFoundError:
            raise ConnectFailed("virsh is not installed", target=self.label,
                                hint="apt-get install libvirt-clients") from None
        except subprocess.TimeoutExpired:
            raise GuestNotReady(f"virsh qemu-agent-command {command} did not return in time",
                                target=self.label, hint=SILENT_HINT) from None
        stderr = done.stderr.decode(errors="replace").strip()
        if done.returncode != 0 or stderr.startswith("error:"):
            raise _virsh_error(stderr, self.label, command)
        # virsh reading stdin echoes the command after a "virsh # " prompt; the reply is the
        # one line that is a JSON object
        replies = [line for line in done.stdout.splitlines() if line.startswith(b"{")]
        try:
            return reply_value(json.loads(replies[-1]), command)
        except (ValueError, IndexError):
            raise SessionBroken(f"virsh printed no JSON reply: {done.stdout[:200]!r}",
                                target=self.label) from None

    def close(self) -> None:
        """Nothing held between calls."""


def _virsh_quote(text: str) -> str:
    """Quote a domain name for virsh's command parser (double quotes, backslash escapes).

    >>> _virsh_quote('web "01"')
    '"web \\\\"01\\\\""'
    """
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _virsh_error(stderr: str, label: str, command: str) -> Exception:
    """virsh's documented messages as our errors."""
    text = stderr.removeprefix("error: ").replace("\nerror: ", ": ")
    if "failed to get domain" in text or "Domain not found" in text:
        return VMNotFound(f"libvirt has no such domain: {text}", target=label,
                          hint="virsh list --all shows the domains of this connection "
                               "(?connect=qemu:///system or qemu:///session)")
    if "not connected" in text or "not responding" in text or "not running" in text:
        return GuestNotReady(f"virsh: {text}", target=label, hint=SILENT_HINT)
    if "failed to connect" in text:
        return ConnectFailed(f"virsh cannot reach libvirt: {text}", target=label,
                             hint="is libvirtd running, and may this user use the URI?")
    return AgentError(command, "virsh", text)
