"""Native PowerShell Direct: AF_HYPERV sockets, the broker handshake, then OutOfProc PSRP.

Only on a Windows Hyper-V host with Python >= 3.12 (``socket.AF_HYPERV``); elsewhere
:func:`native_unavailable_reason` says why and the nested route (a PowerShell session on the
host running ``New-PSSession -VMId``) is the one to use. The protocol lives in
``powershell/hvsocket.py`` (sans-IO); this module only moves its bytes, each step bounded by the
connect timeout. The socket factory is injectable, so tests run the whole path over loopback.

Wiring (the ``vm`` transport, which owns target parsing and the choice of route)::

    if native_available():
        return NativePSDirect(vm_id, credential, settings, label=target.url).engine()
    # else: the nested route

``engine()`` returns an unopened OutOfProc engine; ``PowerShellTransport.open()`` opens it with
``settings.connect_timeout`` (both connections and the RunspacePool within that bound).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
import time
import uuid
from collections.abc import Callable

from ..credentials.secret import Credential, Secret
from ..errors import ConnectFailed, TransportUnavailable
from ..powershell import hvsocket as hv
from ..powershell.outofproc import OutOfProcEngine
from ..settings import Settings

log = logging.getLogger(__name__)
_READ = 65536

#: (vm_id, service_id, timeout) -> a connected stream socket.
SocketFactory = Callable[[uuid.UUID, uuid.UUID, float], socket.socket]


def native_unavailable_reason() -> str | None:
    """Why native PowerShell Direct cannot be used here, or None when it can."""
    if sys.platform != "win32":
        return (f"native PowerShell Direct needs Windows (a Hyper-V host); this is "
                f"{sys.platform}")
    if sys.version_info < (3, 12):
        return (f"native PowerShell Direct needs Python >= 3.12 (socket.AF_HYPERV); this is "
                f"{sys.version_info.major}.{sys.version_info.minor}")
    if not hasattr(socket, "AF_HYPERV"):
        return "this Python has no socket.AF_HYPERV (not built with Hyper-V socket support)"
    try:
        probe = socket.socket(socket.AF_HYPERV, socket.SOCK_STREAM, socket.HV_PROTOCOL_RAW)
    except OSError as exc:
        return f"cannot create a Hyper-V socket ({exc}); is this a Hyper-V host?"
    probe.close()
    return None


def native_available() -> bool:
    """True on a Windows host where AF_HYPERV sockets can be created (Python >= 3.12)."""
    return native_unavailable_reason() is None


def require_native() -> None:
    """Raise :class:`TransportUnavailable` saying why native PowerShell Direct is not available."""
    reason = native_unavailable_reason()
    if reason is not None:
        raise TransportUnavailable(reason, hint="use the nested route: --hyperv-host HOST (a "
                                                "PowerShell session on the Hyper-V host)")


def hyperv_connect(vm_id: uuid.UUID, service_id: uuid.UUID, timeout: float) -> socket.socket:
    """An AF_HYPERV stream socket connected to (vm_id, service_id) within ``timeout``."""
    require_native()
    sock = socket.socket(socket.AF_HYPERV, socket.SOCK_STREAM,  # type: ignore[attr-defined,unused-ignore]
                         socket.HV_PROTOCOL_RAW)  # type: ignore[attr-defined,unused-ignore]
    sock.settimeout(timeout)
    try:
        sock.connect((str(vm_id), str(service_id)))
    except BaseException:
        sock.close()
        raise
    return sock


class SocketPipes:
    """ShellPipes over the server socket; ``read_stderr`` is always at EOF (a socket has one stream).

    The broker's socket is kept open next to it until :meth:`close`.
    """

    def __init__(self, sock: socket.socket, broker: socket.socket | None = None) -> None:
        self.sock = sock
        self.broker = broker
        sock.settimeout(None)  # the engine bounds its waits; the reader thread blocks
        if sock.family in (socket.AF_INET, socket.AF_INET6):  # an injected TCP stand-in: no Nagle
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_stdout(self) -> bytes:
        return self.sock.recv(_READ)

    def read_stderr(self) -> bytes:
        return b""

    def close(self) -> None:
        for sock in (self.sock, self.broker):
            if sock is None:
                continue
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def _remaining(deadline: float, what: str, label: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise ConnectFailed(f"PowerShell Direct: timed out at the {what}", target=label,
                            hint=hv.BROKER_HINT)
    return left


def _receive(sock: socket.socket, step: hv.Receive, deadline: float, label: str) -> bytes:
    data = b""
    while True:
        sock.settimeout(_remaining(deadline, step.what, label))
        try:
            chunk = sock.recv(step.max_bytes - len(data))
        except TimeoutError:
            raise ConnectFailed(f"PowerShell Direct: no {step.what} within the connect timeout",
                                target=label, hint=hv.BROKER_HINT) from None
        except OSError as exc:
            raise ConnectFailed(f"PowerShell Direct: reading the {step.what} failed: {exc}",
                                target=label, hint=hv.BROKER_HINT) from None
        data += chunk
        if not chunk or not step.exact or len(data) >= step.max_bytes:
            return data


Machine = hv.BrokerClient | hv.ServerClient


def run_exchange(sock: socket.socket, machine: Machine, deadline: float,
                 label: str) -> hv.Done | hv.Reconnect:
    """Drive ``machine`` over ``sock`` until it is done; raise what it fails with."""
    events = machine.start()
    while True:
        for i, event in enumerate(events):
            if isinstance(event, hv.Send):
                log.debug("%s: hvsocket -> %s", label, event.what)
                sock.settimeout(_remaining(deadline, event.what, label))
                try:
                    sock.sendall(event.data)
                except OSError as exc:
                    raise ConnectFailed(f"PowerShell Direct: sending the {event.what} failed: "
                                        f"{exc}", target=label, hint=hv.BROKER_HINT) from None
            elif isinstance(event, hv.Receive):
                if i != len(events) - 1:
                    raise RuntimeError("a Receive must end an event list")
                reply = _receive(sock, event, deadline, label)
                log.debug("%s: hvsocket <- %s (%d bytes)", label, event.what, len(reply))
                events = machine.receive(reply)
                break
            elif isinstance(event, hv.Fail):
                raise event.error
            else:
                return event
        else:
            raise RuntimeError("the handshake machine stopped without an outcome")


class NativePSDirect:
    """PowerShell Direct into ``vm_id`` over AF_HYPERV: broker handshake, then OutOfProc PSRP.

    ``socket_factory`` replaces :func:`hyperv_connect` (tests use loopback TCP). ``allow_legacy``
    is PowerShell's fallback for guests without the VERSION/TOKEN exchange (off = the
    ``RequirePsDirectAuthentication`` registry policy).
    """

    def __init__(self, vm_id: uuid.UUID | str, credential: Credential, settings: Settings, *,
                 configuration_name: str | None = None, socket_factory: SocketFactory | None = None,
                 allow_legacy: bool = True, label: str | None = None) -> None:
        self.vm_id = uuid.UUID(str(vm_id))
        self.credential = credential
        self.settings = settings
        self.configuration_name = configuration_name
        self.socket_factory = socket_factory or hyperv_connect
        self.allow_legacy = allow_legacy
        self.label = label or f"vmid://{self.vm_id}"
        self.legacy: bool | None = None  # known after connect()

    def __repr__(self) -> str:
        return f"NativePSDirect({self.label}, user={self.credential.username!r})"

    def _open_socket(self, service: str, deadline: float) -> socket.socket:
        timeout = _remaining(deadline, f"connection to service {service}", self.label)
        try:
            return self.socket_factory(self.vm_id, uuid.UUID(service), timeout)
        except TimeoutError:
            raise ConnectFailed(f"PowerShell Direct: connecting to the VM timed out after "
                                f"{timeout:.3g}s", target=self.label, hint=hv.BROKER_HINT) from None
        except OSError as exc:
            raise ConnectFailed(f"PowerShell Direct: cannot connect to the VM ({exc})",
                                target=self.label,
                                hint="is the VM id right and the VM running, and is this process "
                                     "a Hyper-V administrator? " + hv.BROKER_HINT) from None

    def _broker(self, deadline: float) -> tuple[socket.socket, Secret | None]:
        legacy = False
        while True:
            sock = self._open_socket(hv.BROKER_SERVICE_ID, deadline)
            machine = hv.BrokerClient(self.credential.username, self.credential.secret,
                                      configuration_name=self.configuration_name, legacy=legacy,
                                      allow_legacy=self.allow_legacy, target=self.label)
            try:
                outcome = run_exchange(sock, machine, deadline, self.label)
            except BaseException:
                sock.close()
                raise
            if isinstance(outcome, hv.Done):
                self.legacy = legacy
                return sock, outcome.token
            log.debug("%s: legacy PowerShell Direct guest; reconnecting to the broker", self.label)
            sock.close()
            legacy = True

    def connect(self, timeout: float) -> SocketPipes:
        """Both connections and their exchanges within ``timeout``; the server socket as pipes."""
        deadline = time.monotonic() + timeout
        broker, token = self._broker(deadline)
        try:
            server = self._open_socket(hv.SERVER_SERVICE_ID, deadline)
            try:
                run_exchange(server, hv.ServerClient(token, target=self.label), deadline,
                             self.label)
            except BaseException:
                server.close()
                raise
        except BaseException:
            broker.close()
            raise
        log.debug("%s: PowerShell Direct connected (legacy=%s)", self.label, self.legacy)
        return SocketPipes(server, broker)

    def engine(self) -> OutOfProcEngine:
        """An unopened OutOfProc engine whose ``open(timeout)`` runs :meth:`connect`."""
        return OutOfProcEngine(self.connect, label=self.label)

    def open(self) -> OutOfProcEngine:
        """An opened engine (``settings.connect_timeout``); close it when done."""
        engine = self.engine()
        try:
            engine.open(self.settings.connect_timeout)
        except BaseException:
            engine.close()
            raise
        return engine
