"""``qemu://NAME``: a QEMU VM through its guest agent (qemu-ga on virtio-serial), no network.

Where the agent is: ``?qga=PATH`` (a socket QEMU serves: ``-chardev socket,path=PATH,server=on``),
``?connect=qemu:///system`` (or ``qemu:///session``: a libvirt domain named NAME, through
``virsh qemu-agent-command``), else ``DIR/NAME/qga.sock`` where DIR is ``?dir=`` or the folder
the plugin's own QEMU VMs live in (:data:`~pytest_psdirect.hypervisors.qemu.machine.DEFAULT_ROOT`).

Each command is one ``guest-exec`` of ``/bin/sh -c`` (as the agent's user, root) with the
agent's environment plus ``PSDIRECT_SESSION``, polled with ``guest-exec-status`` (2 ms, growing
to 50 ms); past its timeout every process carrying the command's mark is killed (a guest-exec
of ``kill``), and when the session ends every process carrying the session's mark. The agent
returns output only when the command has ended and keeps at most 16 MiB of each stream, so
``stream=`` sees it at the end and output past the cap raises OutputTooLarge then.

Example::

    >>> from pytest_psdirect.targets import parse_target
    >>> from pytest_psdirect.settings import Settings
    >>> t = QemuTransport(parse_target("qemu://web01?dir=/srv/vms"), None, Settings())
    >>> t.agent_location()
    ('socket', '/srv/vms/web01/qga.sock')
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import shlex
import time
from collections.abc import Callable, Mapping
from typing import ClassVar, TypeVar

from ..credentials.secret import Credential
from ..errors import (
    CommandTimeout,
    FileTransferError,
    OutputTooLarge,
    PSDirectError,
    SessionBroken,
    TargetSpecError,
)
from ..hypervisors.qemu.channel import Channel, SocketChannel, VirshChannel
from ..hypervisors.qemu.guest import AGENT_OUTPUT_LIMIT, GuestAgent
from ..hypervisors.qemu.machine import vm_folder
from ..hypervisors.qemu.protocol import AgentError
from ..results import CommandResult
from ..settings import Settings
from ..targets import Target
from ..transports.agentproto import run_spec
from ..transports.runner import OutputCallback
from ..transports.shellproto import compose
from .base import Transport
from .files import atomic_local_file, partial_name

log = logging.getLogger(__name__)
T = TypeVar("T")
_KEEP = 64 * 1024  # output kept in OutputTooLarge
#: kills every process whose environment holds the entry $1 (then PID $2): one grep over every
#: /proc/PID/environ (-z: entries are NUL-terminated; busybox's and GNU grep), twice, as a
#: process may fork while the first pass runs
KILL_MARKED = ('for pass in 1 2; do for f in $(grep -lzxF "$1" /proc/[0-9]*/environ 2>/dev/null); '
               'do p=${f#/proc/}; kill -KILL "${p%/environ}" 2>/dev/null; done; done; '
               '[ -n "$2" ] && kill -KILL "$2" 2>/dev/null; true')
LIBVIRT_URIS = re.compile(r"^qemu(\+[a-z]+)?://[^?#]*/(system|session)(\?.*)?$")


class QemuTransport(Transport):
    """Commands and files in a QEMU guest through qemu-ga."""

    scheme: ClassVar[str] = "qemu"

    _channel: Channel | None = None
    _count = 0

    def __init__(self, target: Target, credential: Credential | None, settings: Settings) -> None:
        super().__init__(target, credential, settings)
        self._session = secrets.token_hex(8)
        self._started = False  # a command ran: there may be something to kill at close

    def agent_location(self) -> tuple[str, str]:
        """``("socket", PATH)`` or ``("libvirt", URI)``; TargetSpecError for a bad URL."""
        return agent_location(self.target.vm_name, self.target.option("qga"),
                              self.target.option("connect"), self.target.option("dir"))

    def open(self) -> None:
        kind, where = self.agent_location()
        if kind == "libvirt":
            channel: Channel = VirshChannel(where, self.target.vm_name, label=self.target.url)
            GuestAgent(channel).ping(timeout=self.settings.connect_timeout)
        else:
            sock = SocketChannel(where, label=self.target.url, kind="qga")
            sock.open(self.settings.connect_timeout)
            channel = sock
        self._channel = channel

    @property
    def alive(self) -> bool:
        return self._channel is not None and self._channel.alive

    def _agent(self) -> GuestAgent:
        if self._channel is None or not self._channel.alive:
            raise SessionBroken("the guest agent connection is closed", target=self.target.url)
        return GuestAgent(self._channel)

    def run(self, cmd: str, *, timeout: float, env: Mapping[str, str] | None = None,
            cwd: str | None = None, stream: OutputCallback | None = None) -> CommandResult:
        start = time.perf_counter()
        spec = run_spec(cmd, timeout=timeout, env=env, cwd=cwd)  # refuse bad values now
        agent = self._agent()
        self._count += 1
        mark = f"{self._count}.{self._session}"
        script = (f"export PSDIRECT_SESSION={shlex.quote(self._session)} "
                  f"PSDIRECT_COMMAND={shlex.quote(mark)} && " + compose(cmd, env=env, cwd=cwd))
        call = self.settings.connect_timeout
        deadline = time.monotonic() + spec.timeout
        self._started = True
        pid = self._call(lambda: agent.exec("/bin/sh", ["-c", script], timeout=call))
        done = self._call(lambda: agent.wait(pid, deadline=deadline, call_timeout=call))
        if done is None:
            self._kill(agent, f"PSDIRECT_COMMAND={mark}", pid)
            late = self._call(lambda: agent.wait(pid, deadline=time.monotonic() + call,
                                                 call_timeout=call))
            raise CommandTimeout(f"command timed out after {spec.timeout:g}s (killed)",
                                 target=self.target.url, command=cmd, timeout=spec.timeout,
                                 stdout=late.stdout if late else b"",
                                 stderr=late.stderr if late else b"")
        size = len(done.stdout) + len(done.stderr)
        if done.truncated or size > self.settings.max_output:
            limit = min(self.settings.max_output, AGENT_OUTPUT_LIMIT)
            raise OutputTooLarge(f"output passed {limit} bytes (the guest agent keeps at most "
                                 f"{AGENT_OUTPUT_LIMIT} bytes of each stream)",
                                 target=self.target.url, command=cmd, limit=limit,
                                 stdout=done.stdout[:_KEEP], stderr=done.stderr[:_KEEP])
        if stream is not None:
            for number, data in ((1, done.stdout), (2, done.stderr)):
                if data:
                    stream(number, data)
        return CommandResult(rc=done.rc, stdout_bytes=done.stdout, stderr_bytes=done.stderr,
                             duration=time.perf_counter() - start, command=cmd,
                             target=self.target.url)

    def _call(self, action: Callable[[], T]) -> T:
        """Run an agent call; an error reply becomes a PSDirectError naming the target."""
        try:
            return action()
        except AgentError as exc:
            raise SessionBroken(f"the guest agent refused {exc}", target=self.target.url,
                                hint="is /bin/sh in the guest? qemu-ga may block guest-exec "
                                     "(its --block-rpcs / allow-rpcs setting)") from None

    def _kill(self, agent: GuestAgent, entry: str, pid: int | str = "") -> None:
        """Kill every guest process whose environment holds ``entry`` (and ``pid``)."""
        wait = self.settings.connect_timeout
        try:
            agent.run("/bin/sh", ["-c", KILL_MARKED, "sh", entry, str(pid)], timeout=wait)
        except (PSDirectError, AgentError) as exc:
            log.warning("%s: could not kill the guest processes of %s: %s", self.target, entry,
                        exc)

    # -- files ----------------------------------------------------------------------------------
    def put(self, local: str, remote: str) -> None:
        agent, wait, part = self._agent(), self.settings.connect_timeout, partial_name(remote)
        try:
            src = open(local, "rb")  # noqa: SIM115 - closed by the with below
        except OSError as exc:
            raise FileTransferError(f"cannot read {local}: {exc.strerror or exc}",
                                    target=self.target.url, hint="check the local path") from None
        with src:
            handle = self._file_call(lambda: agent.open(part, "wb", timeout=wait), local, remote)
            try:
                try:
                    while chunk := src.read(agent.channel.chunk):
                        self._file_call(lambda: agent.write(handle, chunk, timeout=wait),
                                        local, remote)
                finally:
                    self._file_call(lambda: agent.close_file(handle, timeout=wait), local, remote)
                done = agent.run("mv", ["-f", "--", part, remote], timeout=wait)
                if done is None or done.rc != 0:
                    why = done.stderr.decode(errors="replace").strip() if done else "timed out"
                    raise FileTransferError(f"copy {local} -> {remote} failed: mv: {why}",
                                            target=self.target.url, hint="check the guest path")
            except BaseException:
                with contextlib.suppress(PSDirectError, AgentError):
                    if self.alive:
                        agent.run("rm", ["-f", "--", part], timeout=wait)
                raise

    def get(self, remote: str, local: str) -> None:
        agent, wait = self._agent(), self.settings.connect_timeout
        try:
            with atomic_local_file(local) as part, open(part, "wb") as dst:
                handle = self._file_call(lambda: agent.open(remote, "rb", timeout=wait),
                                         remote, local)
                try:
                    eof = False
                    while not eof:
                        data, eof = self._file_call(lambda: agent.read(
                            handle, timeout=wait, count=agent.channel.chunk),
                                                    remote, local)
                        dst.write(data)
                finally:
                    self._file_call(lambda: agent.close_file(handle, timeout=wait), remote, local)
        except OSError as exc:
            raise FileTransferError(f"copy {remote} -> {local} failed: {exc.strerror or exc}",
                                    target=self.target.url, hint="check the local path") from None

    def _file_call(self, action: Callable[[], T], src: str, dst: str) -> T:
        try:
            return action()
        except AgentError as exc:
            raise FileTransferError(f"copy {src} -> {dst} failed: {exc.desc}",
                                    target=self.target.url,
                                    hint="check both paths and their permissions") from None

    def close(self) -> None:
        """Kill what this session's commands left running in the guest, then disconnect."""
        if self._channel is None:
            return
        if self._started and self._channel.alive:
            self._kill(GuestAgent(self._channel), f"PSDIRECT_SESSION={self._session}")
        self._channel.close()
        self._channel = None


def agent_location(name: str, qga: str | None, connect: str | None,
                   folder: str | None) -> tuple[str, str]:
    """Where the agent of VM ``name`` answers (see the module doc); TargetSpecError if unclear.

    >>> agent_location("web01", None, "qemu:///session", None)
    ('libvirt', 'qemu:///session')
    >>> agent_location("../x", None, None, "/vms")
    Traceback (most recent call last):
    ...
    pytest_psdirect.errors.TargetSpecError: '../x' is not a usable QEMU VM name here: ...
    """
    if qga and connect:
        raise TargetSpecError("qemu:// takes ?qga=PATH or ?connect=URI, not both",
                              hint="?qga= for a QEMU you started, ?connect= for libvirt")
    if connect:
        if not LIBVIRT_URIS.match(connect):
            raise TargetSpecError(f"?connect={connect!r} is not a libvirt QEMU URI",
                                  hint="write qemu:///system or qemu:///session")
        return "libvirt", connect
    if qga:
        return "socket", os.path.expanduser(qga)
    return "socket", str(vm_folder(name, folder) / "qga.sock")
