"""``ssh://[user@]host[:port]``: OpenSSH servers through paramiko, one connection per session.

Commands go to the command agent (``agent.py``, run by the target's ``python3``) on one exec
channel: each runs as ``$SHELL -c cmd`` exactly as ``ssh host cmd`` would, without the ~45 ms of
a new channel; files go over SFTP on the same connection, with a stall bound, through a temporary
name that is renamed into place only when the copy is complete. Host keys are checked
against known_hosts unless ``--ssh-insecure-host-keys`` or ``?insecure=1`` says otherwise.

URL options: ``key=PATH`` (private key), ``known_hosts=PATH``, ``insecure=1``, ``timeout=SECONDS``
(connect timeout).
"""

from __future__ import annotations

import contextlib
import errno
import getpass
import logging
import os
import queue
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import paramiko

from ..errors import (
    AuthenticationFailed,
    CommandTimeout,
    ConnectFailed,
    FileTransferError,
    HostKeyMismatch,
    TargetSpecError,
)
from ..settings import validate_timeout
from .agentproto import bootstrap_command
from .base import ShellTransport
from .executor import ShellPipes
from .files import atomic_local_file, partial_name
from .shellproto import Completed

log = logging.getLogger(__name__)
_READ = 65536
_CLOSE_WAIT = 2.0  # seconds to let the agent end its processes when a session closes


@dataclass(frozen=True)
class _Endpoint:
    """Where and as whom to connect, after ssh_config and URL options are applied."""

    hostname: str
    port: int
    username: str
    key_files: tuple[str, ...]
    known_hosts: str | None
    connect_timeout: float


class _ChannelPipes:
    """ShellPipes over a paramiko exec channel."""

    def __init__(self, chan: paramiko.Channel) -> None:
        self._chan = chan

    def write(self, data: bytes) -> None:
        if self._chan.closed:
            raise OSError("channel closed")
        self._chan.sendall(data)

    def read_stdout(self) -> bytes:
        return self._chan.recv(_READ)

    def read_stderr(self) -> bytes:
        return self._chan.recv_stderr(_READ)

    def close(self) -> None:
        """Send EOF (the agent then kills what it started and exits), wait briefly, close."""
        with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
            self._chan.shutdown_write()
        transport = self._chan.get_transport()
        if transport is not None and transport.is_active():
            self._chan.status_event.wait(_CLOSE_WAIT)
        self._chan.close()


class SSHTransport(ShellTransport):
    """POSIX hosts over SSH (key, agent or password)."""

    scheme: ClassVar[str] = "ssh"
    _client: paramiko.SSHClient | None = None
    _sftp: paramiko.SFTPClient | None = None

    def _endpoint(self) -> _Endpoint:
        target, settings = self.target, self.settings
        conf = paramiko.SSHConfigDict()
        config_path = settings.ssh_config
        if config_path:
            try:
                conf = paramiko.SSHConfig.from_path(os.path.expanduser(config_path)).lookup(
                    target.host)
            except OSError as exc:
                raise TargetSpecError(f"cannot read ssh config {config_path}: {exc.strerror}",
                                      target=target.url, hint="check --ssh-config") from None
        user = (target.user or (self.credential.username if self.credential else None)
                or conf.get("user") or getpass.getuser())
        keys = [k for k in (target.option("key"), settings.ssh_key) if k]
        keys += list(conf.get("identityfile", []) if not keys else [])
        timeout = target.option("timeout")
        try:
            connect_timeout = (validate_timeout(timeout, "?timeout") if timeout is not None
                               else settings.connect_timeout)
        except ValueError as exc:
            raise TargetSpecError(str(exc), target=target.url, hint="write ?timeout=5") from None
        known = target.option("known_hosts") or settings.known_hosts or conf.get("userknownhostsfile")
        return _Endpoint(
            hostname=conf.get("hostname", target.host).strip("[]"),
            port=target.port or int(conf.get("port", 22)), username=user,
            key_files=tuple(os.path.expanduser(k) for k in keys),
            known_hosts=os.path.expanduser(known.split()[0]) if known else None,
            connect_timeout=connect_timeout)

    def open(self) -> None:
        __tracebackhide__ = True
        self.connect()
        self._ensure_runner()

    def connect(self) -> None:
        """Connect and authenticate only (``pwsh+ssh://`` then opens its subsystem channel)."""
        __tracebackhide__ = True
        ep = self._endpoint()
        for key in ep.key_files:
            if not os.path.isfile(key):
                raise TargetSpecError(f"SSH key file {key} does not exist", target=self.target.url,
                                      hint="check --ssh-key / ?key= / IdentityFile")
        known = self.target.option("known_hosts")
        if known and not os.path.isfile(os.path.expanduser(known)):
            raise TargetSpecError(f"known_hosts file {known} does not exist", target=self.target.url,
                                  hint="check ?known_hosts= (--ssh-known-hosts is checked at start)")
        client = paramiko.SSHClient()
        client.load_system_host_keys()
        if ep.known_hosts and os.path.exists(ep.known_hosts):
            client.load_host_keys(ep.known_hosts)
        insecure = self.settings.insecure_host_keys or self.target.flag("insecure")
        if insecure:
            log.warning("%s: host key NOT verified (insecure host keys requested)", self.target)
            client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        else:
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            client.connect(
                ep.hostname, port=ep.port, username=ep.username,
                password=self.credential.secret.reveal() if self.credential else None,
                key_filename=list(ep.key_files) or None,  # type: ignore[arg-type]  # stub: str only
                look_for_keys=not ep.key_files,  # a given key is the only one tried
                allow_agent=True, timeout=ep.connect_timeout, banner_timeout=ep.connect_timeout,
                auth_timeout=ep.connect_timeout, channel_timeout=ep.connect_timeout)
        except Exception as exc:
            client.close()
            raise self._connect_error(exc, ep) from None
        self._client = client
        transport = client.get_transport()
        if transport is not None:
            transport.set_keepalive(30)

    def open_subsystem(self, name: str, timeout: float) -> paramiko.Channel:
        """A channel running the server's ``Subsystem name`` (e.g. ``powershell``)."""
        chan = self._transport().open_session(timeout=timeout)
        chan.invoke_subsystem(name)
        return chan

    def _connect_error(self, exc: Exception, ep: _Endpoint) -> ConnectFailed:
        where, url = f"{ep.hostname}:{ep.port}", self.target.url
        if isinstance(exc, paramiko.BadHostKeyException):
            return HostKeyMismatch(
                f"host key of {where} differs from known_hosts", target=url,
                hint="the host was reinstalled or this is a man-in-the-middle; check, then fix "
                     "known_hosts (ssh-keygen -R)")
        if isinstance(exc, paramiko.AuthenticationException):
            return AuthenticationFailed(f"authentication failed for user {ep.username!r}",
                                        target=url)
        if isinstance(exc, paramiko.SSHException) and "known_hosts" in str(exc):
            return HostKeyMismatch(
                f"host key of {where} is not in known_hosts", target=url,
                hint=f"add it (ssh-keyscan -p {ep.port} {ep.hostname} >> ~/.ssh/known_hosts), "
                     "pass --ssh-known-hosts, or --ssh-insecure-host-keys to skip the check")
        if isinstance(exc, socket.gaierror):
            return ConnectFailed(f"cannot resolve host name {ep.hostname!r}", target=url,
                                 hint="check the spelling, DNS or your ssh config")
        if isinstance(exc, TimeoutError | socket.timeout):
            return ConnectFailed(f"no answer from {where} within {ep.connect_timeout:g}s",
                                 target=url, hint="host down or filtered; raise ?timeout= or "
                                 "--psdirect-connect-timeout if the host is slow")
        if isinstance(exc, paramiko.SSHException) and "No authentication methods" in str(exc):
            return AuthenticationFailed(
                f"nothing to authenticate user {ep.username!r} with: no key, no agent key and no "
                "password", target=url,
                hint="pass --ssh-key PATH (or ?key=), load a key into ssh-agent, or give a "
                     "credential (--credential-env PREFIX, an inventory credential)")
        if isinstance(exc, OSError):
            return _socket_error(exc, where, url)
        return ConnectFailed(f"SSH connection to {where} failed: {type(exc).__name__}: {exc}",
                             target=url, hint="check that the server speaks SSH on that port")

    @property
    def alive(self) -> bool:
        transport = self._client.get_transport() if self._client else None
        return transport is not None and transport.is_active()

    def _transport(self) -> paramiko.Transport:
        transport = self._client.get_transport() if self._client else None
        if transport is None or not transport.is_active():
            raise ConnectFailed("SSH connection is closed", target=self.target.url,
                                hint="the session is reopened once on the next command")
        return transport

    def _channel(self, command: str) -> paramiko.Channel:
        chan = self._transport().open_session(timeout=self.settings.connect_timeout)
        chan.exec_command(command)
        return chan

    def _spawn_agent(self, source: bytes) -> ShellPipes:
        pipes = _ChannelPipes(self._channel(bootstrap_command(len(source))))
        pipes.write(source)
        return pipes

    def _on_unresponsive(self) -> None:
        log.warning("%s: the target stopped answering; dropping the connection", self.target)
        if self._client is not None:
            self._client.close()  # first: then nothing below waits on the dead peer
        self.close()

    def _spawn_shell(self) -> tuple[ShellPipes, Callable[[int], None]]:
        return _ChannelPipes(self._channel("exec /bin/sh")), self._kill_group

    def _kill_groups(self, groups: list[int], *, check: bool = False) -> None:
        """``kill -s KILL -- -G...`` on one exec channel, its answer awaited at most the connect
        timeout; with ``check``, a failure (a group already gone included) raises OSError."""
        command = "kill -s KILL -- " + " ".join(f"-{int(g)}" for g in groups)
        chan = self._channel(command)
        answered = chan.status_event.wait(self.settings.connect_timeout)
        rc = chan.exit_status if answered else None
        chan.close()
        if check and rc != 0:
            raise OSError(f"{command} " + (f"exited {rc}" if answered else "did not answer"))

    def _kill_group(self, pgid: int) -> None:
        # sshd runs each session in its own process group (setsid), so this ends the stateful
        # shell and every command it started.
        self._kill_groups([pgid], check=True)

    def _exec_once(self, cmd: str, timeout: float) -> Completed:
        chan = self._channel(cmd)
        chan.shutdown_write()
        streams: queue.Queue[tuple[int, bytes]] = queue.Queue()
        parts: dict[int, bytearray] = {1: bytearray(), 2: bytearray()}

        def pump(stream: int, read: Callable[[int], bytes]) -> None:
            while data := read(_READ):
                streams.put((stream, data))
            streams.put((stream, b""))

        for stream, read in ((1, chan.recv), (2, chan.recv_stderr)):
            threading.Thread(target=pump, args=(stream, read), daemon=True).start()
        open_streams = 2
        while open_streams:
            try:
                stream, data = streams.get(timeout=timeout)
            except queue.Empty:
                chan.close()
                raise CommandTimeout(f"command timed out after {timeout:g}s",
                                     target=self.target.url, command=cmd, timeout=timeout,
                                     stdout=bytes(parts[1]), stderr=bytes(parts[2])) from None
            open_streams -= not data
            parts[stream] += data
        rc = chan.recv_exit_status()
        chan.close()
        return Completed(0, rc, bytes(parts[1]), bytes(parts[2]))

    def _sftp_client(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            self._sftp = paramiko.SFTPClient.from_transport(
                self._transport(), window_size=None, max_packet_size=None)
            if self._sftp is None:  # pragma: no cover - paramiko returns None only on failure
                raise FileTransferError("SFTP subsystem unavailable", target=self.target.url,
                                        hint="enable 'Subsystem sftp' in sshd_config")
            # a stall bound on every SFTP read: a vanished host fails the copy, never hangs it
            channel = self._sftp.get_channel()
            if channel is not None:
                channel.settimeout(self.settings.connect_timeout)
        return self._sftp

    def put(self, local: str, remote: str) -> None:
        part = partial_name(remote)

        def action(sftp: paramiko.SFTPClient) -> None:
            try:
                sftp.put(local, part)
                sftp.posix_rename(part, remote)
            except BaseException:
                with contextlib.suppress(OSError, paramiko.SSHException, EOFError):
                    sftp.remove(part)
                raise

        self._transfer(action, f"{local} -> {remote}")

    def get(self, remote: str, local: str) -> None:
        with atomic_local_file(local) as part:
            self._transfer(lambda sftp: sftp.get(remote, part), f"{remote} -> {local}")

    def _transfer(self, action: Callable[[paramiko.SFTPClient], object], what: str) -> None:
        try:
            action(self._sftp_client())
        except (TimeoutError, EOFError, paramiko.SSHException) as exc:
            if isinstance(exc, paramiko.SSHException) and "imeout" not in str(exc):
                raise FileTransferError(f"copy {what} failed: {exc}", target=self.target.url,
                                        hint="check both paths and their permissions") from None
            self._sftp = None
            self._on_unresponsive()
            raise FileTransferError(
                f"copy {what} stalled: nothing moved for {self.settings.connect_timeout:g}s",
                target=self.target.url, hint="the host or the network may be down; the "
                "session is reopened once on the next call") from None
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise FileTransferError(f"copy {what} failed: {reason}", target=self.target.url,
                                    hint="check both paths and their permissions") from None

    def close(self) -> None:
        super().close()
        if self._sftp is not None:
            self._sftp.close()
            self._sftp = None
        if self._client is not None:
            self._client.close()
            self._client = None


_UNREACHABLE = (errno.EHOSTUNREACH, errno.ENETUNREACH)


def _socket_error(exc: OSError, where: str, url: str) -> ConnectFailed:
    """Name the real cause of a failed TCP connect; paramiko's NoValidConnectionsError wraps
    one error per address tried (``exc.errors``), so look at those."""
    causes = [exc]
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        causes = [e for e in exc.errors.values() if isinstance(e, OSError)] or causes
    codes = {e.errno for e in causes}
    if codes & set(_UNREACHABLE):
        return ConnectFailed(f"no route to host {where}", target=url,
                             hint="the host is down or off this network (no ARP answer / no "
                                  "route); check the address, the host and the routing")
    if errno.ECONNREFUSED in codes:
        return ConnectFailed(f"connection refused by {where}", target=url,
                             hint="is sshd running and listening on that port?")
    reason = next((e.strerror for e in causes if e.strerror), None) or str(exc)
    return ConnectFailed(f"cannot connect to {where}: {reason}", target=url,
                         hint="check the address and the network path")
