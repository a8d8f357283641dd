"""A PowerShell Direct guest for the tests: the broker and the server on loopback TCP.

Two listening sockets stand for the VM's Hyper-V socket services (broker 999e53d4-...,
server a5201c21-...); :meth:`FakeGuest.socket_factory` is what ``NativePSDirect`` connects
through. The broker follows the exchange PowerShell's ``RemoteSessionHyperVSocket.cs`` documents
(VERSION/VERSION_2 or legacy, domain, user, EMPTYPW/NONEMPTYPW, PASS/FAIL/CONF, EMPTYCF/NONEMPTYCF,
TOKEN); the server checks VERSION and TOKEN, then hands the socket to ``tests/psrp_server.py`` as
its stdin/stdout (as vmicvmsession hands it to ``pwsh``): OutOfProc PSRP over the socket.

``reply`` overrides what the guest answers at a step (bytes), ``None`` there makes it go silent.
Everything each side received is kept in ``broker_log`` / ``server_log`` for assertions.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

SERVER = Path(__file__).with_name("psrp_server.py")
BROKER_ID = uuid.UUID("999e53d4-3d5c-4c3e-8779-bed06ec056e1")
SERVER_ID = uuid.UUID("a5201c21-2770-4c11-a68e-f182edb29220")
_SILENT = object()


class _Closed(Exception):
    pass


class FakeGuest:
    def __init__(self, *, users: dict[str, str] | None = None, legacy: bool = False,
                 conf: bool = True, reply: dict[str, bytes | None] | None = None,
                 psrp: bool = True) -> None:
        self.users = {"localhost\\admin": "Pa55w.rd"} if users is None else users
        self.legacy = legacy
        self.conf = conf
        self.reply = reply or {}
        self.psrp = psrp
        self.tokens: set[str] = set()
        self.broker_log: list[list[bytes]] = []
        self.server_log: list[list[bytes]] = []
        self.sessions: list[dict[str, str | None]] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        self.connects: list[uuid.UUID] = []
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self.listeners = {BROKER_ID: self._listen(self._broker), SERVER_ID: self._listen(self._server)}

    # --- plumbing ---------------------------------------------------------------------------
    def _listen(self, handler: object) -> socket.socket:
        sock = socket.create_server(("127.0.0.1", 0))
        sock.settimeout(0.2)
        threading.Thread(target=self._accept, args=(sock, handler), daemon=True).start()
        return sock

    def _accept(self, sock: socket.socket, handler: object) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = sock.accept()
            except (TimeoutError, OSError):
                continue
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle, as hvsocket
            self._conns.append(conn)
            threading.Thread(target=self._run, args=(handler, conn), daemon=True).start()

    def _run(self, handler: object, conn: socket.socket) -> None:
        with contextlib.suppress(_Closed, OSError):
            handler(conn)  # type: ignore[operator]

    def socket_factory(self, vm_id: uuid.UUID, service_id: uuid.UUID,
                       timeout: float) -> socket.socket:
        self.connects.append(service_id)
        port = self.listeners[service_id].getsockname()[1]
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def close(self) -> None:
        self._stop.set()
        for sock in [*self.listeners.values(), *self._conns]:
            with contextlib.suppress(OSError):
                sock.close()
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(5)

    @staticmethod
    def _recv(conn: socket.socket, log: list[bytes]) -> bytes:
        data = conn.recv(4096)
        if not data:
            raise _Closed
        log.append(data)
        return data

    def _send(self, conn: socket.socket, step: str, default: bytes) -> None:
        data = self.reply.get(step, default)
        if data is None:  # go silent until the client gives up
            while not self._stop.is_set() and conn.recv(4096):
                pass
            raise _Closed
        conn.sendall(data)

    # --- the broker (vmicvmsession) -----------------------------------------------------------
    def _broker(self, conn: socket.socket) -> None:
        log: list[bytes] = []
        self.broker_log.append(log)
        first = self._recv(conn, log)
        if first == b"VERSION" and not self.legacy:
            self._send(conn, "version", b"VERSION_2")
            self._recv(conn, log)  # VERSION_2
            self._send(conn, "version_ack", b"PASS")
            domain = self._recv(conn, log)
        else:
            domain = first  # a legacy broker takes "VERSION" for the domain
        self._send(conn, "domain", b"PASS")
        user = self._recv(conn, log)
        self._send(conn, "user", b"PASS")
        kind = self._recv(conn, log)
        password = ""
        if kind == b"NONEMPTYPW":
            self._send(conn, "nonemptypw", b"PASS")
            password = self._recv(conn, log).decode("utf-16-le")
        name = f"{domain.decode('utf-16-le', 'replace')}\\{user.decode('utf-16-le', 'replace')}"
        if self.users.get(name) != password:
            self._send(conn, "credential", b"FAIL")
            self._recv(conn, log)  # the client's FAIL
            return
        config: str | None = None
        if self.conf:
            self._send(conn, "credential", b"CONF")
            if self._recv(conn, log) == b"NONEMPTYCF":
                self._send(conn, "nonemptycf", b"PASS")
                config = self._recv(conn, log).decode("utf-16-le")
        else:
            self._send(conn, "credential", b"PASS")
            self._recv(conn, log)  # the client's PASS
        token = None
        if not self.legacy:
            token = secrets.token_urlsafe(32)
            self.tokens.add(token)
            self._send(conn, "token", b"TOKEN " + token.encode())
            self._recv(conn, log)  # PASS
        self.sessions.append({"user": name, "configuration": config, "token": token})
        while conn.recv(4096):  # the broker's connection lives as long as the session
            pass

    # --- the server (the PowerShell process the broker started) ------------------------------
    def _server(self, conn: socket.socket) -> None:
        log: list[bytes] = []
        self.server_log.append(log)
        if not self.legacy:
            self._recv(conn, log)  # VERSION
            self._send(conn, "server_version", b"VERSION_2")
            self._recv(conn, log)  # VERSION_2
            self._send(conn, "server_version_ack", b"PASS")
            token = self._recv(conn, log).decode()
            valid = token.startswith("TOKEN ") and token[6:] in self.tokens
            if valid:  # one connection per token: used up before the answer lets the client on
                self.tokens.discard(token[6:])
            self._send(conn, "server_token", b"PASS" if valid else b"FAIL")
            if not valid:
                return
        if not self.psrp:
            while conn.recv(4096):
                pass
            return
        proc = subprocess.Popen([sys.executable, str(SERVER), "-s"], stdin=conn.fileno(),
                                stdout=conn.fileno(), stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        conn.close()  # the child holds the socket now


def wait_for(predicate: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False
