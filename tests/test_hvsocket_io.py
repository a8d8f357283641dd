"""Native PowerShell Direct end to end over loopback: handshake with a fake guest, then PSRP."""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from hvbroker import BROKER_ID, SERVER_ID, FakeGuest, wait_for

from pytest_psdirect import Credential, Secret, Settings
from pytest_psdirect.errors import AuthenticationFailed, ConnectFailed, TransportUnavailable
from pytest_psdirect.powershell.command import build_invocation
from pytest_psdirect.powershell.hvsocket import Done, LegacyRefused, ServerClient
from pytest_psdirect.targets import Target
from pytest_psdirect.transports import hvsocket_io
from pytest_psdirect.transports.hvsocket_io import NativePSDirect
from pytest_psdirect.transports.powershell import PowerShellTransport

VM = uuid.UUID("6a1b0c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d")
PASSWORD = "Pa55w.rd"


@pytest.fixture
def guest(request):
    kwargs = getattr(request, "param", {})
    g = FakeGuest(**kwargs)
    yield g
    g.close()


def native(guest, username="admin", password=PASSWORD, timeout=5.0, **kwargs):
    return NativePSDirect(VM, Credential(username, Secret(password)),
                          Settings(connect_timeout=timeout), socket_factory=guest.socket_factory,
                          **kwargs)


def session(guest):
    """The broker's record of the session (it writes it just after our last message)."""
    assert wait_for(lambda: guest.sessions)
    return guest.sessions[0]


def handshake_only(guest, **kwargs):
    """connect() with the guest's server not starting PSRP: the handshake alone."""
    guest.psrp = False
    pipes = native(guest, **kwargs).connect(5.0)
    pipes.close()
    return pipes


def test_version2_handshake_with_token(guest):
    nat = native(guest)
    pipes = nat.connect(5.0)
    try:
        assert nat.legacy is False
        assert guest.connects == [BROKER_ID, SERVER_ID]
        record = session(guest)
        assert record["user"] == "localhost\\admin" and record["configuration"] is None
        broker_msgs = guest.broker_log[0]
        assert broker_msgs[:4] == [b"VERSION", b"VERSION_2", "localhost".encode("utf-16-le"),
                                   "admin".encode("utf-16-le")]
        assert broker_msgs[4:] == [b"NONEMPTYPW", PASSWORD.encode("utf-16-le"), b"EMPTYCF", b"PASS"]
        assert guest.server_log[0] == [b"VERSION", b"VERSION_2",
                                       b"TOKEN " + str(record["token"]).encode()]
        assert guest.tokens == set()  # the token was used by our second connection
    finally:
        pipes.close()


def test_legacy_guest_reconnects_and_skips_version_and_token(guest):
    guest.legacy = True
    nat = native(guest)
    guest.psrp = False
    nat.connect(5.0).close()
    assert nat.legacy is True
    assert guest.connects == [BROKER_ID, BROKER_ID, SERVER_ID]
    assert session(guest)["token"] is None
    probe, real = guest.broker_log
    assert wait_for(lambda: len(probe) == 4)
    assert probe == [b"VERSION", "?<PSDirectVMLegacy>".encode("utf-16-le"), b"EMPTYPW", b"FAIL"]
    assert real[0] == "localhost".encode("utf-16-le") and b"VERSION" not in real
    assert wait_for(lambda: guest.server_log == [[]])  # nothing before PSRP on the server


def test_legacy_refused_when_not_allowed(guest):
    guest.legacy = True
    with pytest.raises(LegacyRefused, match="does not support the VERSION exchange"):
        native(guest, allow_legacy=False).connect(5.0)
    assert guest.connects == [BROKER_ID]


def test_empty_password_and_domain_user(guest):
    guest.users = {"WEB01\\svc": ""}
    handshake_only(guest, username="WEB01\\svc", password="")
    assert session(guest)["user"] == "WEB01\\svc"
    msgs = guest.broker_log[0]
    assert msgs[2:5] == ["WEB01".encode("utf-16-le"), "svc".encode("utf-16-le"), b"EMPTYPW"]


def test_wrong_password_is_authentication_failed(guest, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AuthenticationFailed) as info:
        native(guest, password="Not-The-Pa55").connect(5.0)
    assert info.value.message == "The credential is invalid."
    assert info.value.target == f"vmid://{VM}"
    assert "password" in info.value.hint
    assert wait_for(lambda: guest.broker_log[0][-1] == b"FAIL")  # we answered FAIL, as PowerShell
    assert SERVER_ID not in guest.connects
    assert "Not-The-Pa55" not in caplog.text + str(info.value) + repr(info.value)


def test_conf_sends_configuration_name(guest):
    handshake_only(guest, configuration_name="Microsoft.PowerShell")
    assert session(guest)["configuration"] == "Microsoft.PowerShell"
    msgs = guest.broker_log[0]
    assert msgs[-3:] == [b"NONEMPTYCF", "Microsoft.PowerShell".encode("utf-16-le"), b"PASS"]


def test_pass_instead_of_conf_for_old_guests(guest):
    guest.conf = False
    handshake_only(guest, configuration_name="ignored")
    assert session(guest)["configuration"] is None
    assert guest.broker_log[0][-2:] == [b"PASS", b"PASS"]  # our PASS, then the token's PASS


@pytest.mark.parametrize(("reply", "words"), [
    ({"version_ack": b"NOPE"}, "'NOPE' to the VERSION_2 message"),
    ({"credential": b"WHAT"}, "expected 'CONF', 'PASS' or 'FAIL'"),
    ({"token": b"TICKET 42"}, "did not send a token"),
    ({"server_version": b"HELLO"}, "'HELLO' to VERSION"),
    ({"server_token": b"FAIL"}, "The credential is invalid."),
])
def test_malformed_replies(guest, reply, words):
    guest.reply = reply
    with pytest.raises(ConnectFailed) as info:
        handshake_only(guest)
    assert words in info.value.message


@pytest.mark.parametrize("step", ["version", "credential", "token", "server_token"])
def test_silent_guest_is_bounded_by_the_timeout(guest, step):
    guest.reply = {step: None}
    start = time.monotonic()
    with pytest.raises(ConnectFailed, match=r"within the connect timeout|timed out") as info:
        native(guest, timeout=0.5).connect(0.5)
    assert time.monotonic() - start < 2.0
    assert "vmicvmsession" in info.value.hint


def test_token_is_single_use(guest):
    guest.psrp = False
    nat = native(guest)
    nat.connect(5.0).close()
    token = session(guest)["token"]
    sock = guest.socket_factory(VM, SERVER_ID, 2.0)
    sock.sendall(b"VERSION")
    assert sock.recv(16) == b"VERSION_2"
    sock.sendall(b"VERSION_2")
    assert sock.recv(4) == b"PASS"
    sock.sendall(b"TOKEN " + str(token).encode())
    assert sock.recv(256) == b"FAIL"  # the fake guest is as strict as the real one
    sock.close()


def test_refused_connection_is_connect_failed():
    free = socket.create_server(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()

    def factory(vm, service, timeout):
        return socket.create_connection(("127.0.0.1", port), timeout=timeout)

    nat = NativePSDirect(VM, Credential("admin", Secret(PASSWORD)), Settings(),
                         socket_factory=factory)
    with pytest.raises(ConnectFailed, match="cannot connect to the VM") as info:
        nat.connect(1.0)
    assert "Hyper-V administrator" in info.value.hint


def test_native_available_says_why_not():
    reason = hvsocket_io.native_unavailable_reason()
    if sys.platform != "win32":
        assert not hvsocket_io.native_available()
        assert reason is not None and "Windows" in reason
        with pytest.raises(TransportUnavailable, match="Windows") as info:
            hvsocket_io.require_native()
        assert "--hyperv-host" in info.value.hint
    else:
        assert hvsocket_io.native_available() == (reason is None)


# --- the full path: handshake, then OutOfProc PSRP over the socket ------------------------------
def test_run_ps_over_the_socket(guest):
    engine = native(guest).open()
    try:
        result = engine.invoke(build_invocation("psrp-test:objects", (), {}), timeout=10)
        assert result.output[:4] == ["text", 42, True, 2.5]
        engine.invoke(build_invocation("psrp-test:set", (), {"Value": 7}), timeout=10)
        got = engine.invoke(build_invocation("psrp-test:get", (), {}), timeout=10)
        assert got.output == [7]  # one RunspacePool: state kept between invocations
        assert engine.alive
    finally:
        engine.close()
    assert wait_for(lambda: all(p.poll() is not None for p in guest.procs))  # Close ended it


def test_wrong_password_through_engine_open(guest):
    with pytest.raises(AuthenticationFailed, match="The credential is invalid"):
        native(guest, password="Not-The-Pa55").open()
    assert SERVER_ID not in guest.connects


class _NativeVMTransport(PowerShellTransport):
    """How the vm transport plugs the native route in: only _make_engine."""

    scheme = "vmid"

    def _make_engine(self):
        assert self.credential is not None
        return NativePSDirect(self.target.host, self.credential, self.settings,
                              socket_factory=self.socket_factory, label=self.target.url).engine()


def test_wiring_into_a_powershell_transport(guest):
    transport = _NativeVMTransport(Target(scheme="vmid", host=str(VM)),
                                   Credential("admin", Secret(PASSWORD)),
                                   Settings(connect_timeout=5))
    transport.socket_factory = guest.socket_factory
    transport.open()
    try:
        assert transport.alive
        result = transport.run_ps(build_invocation("psrp-test:echo", ("a",), {"N": 1}), timeout=10)
        assert result.output[0]["Args"] == ["a"] and result.output[0]["Params"] == {"N": 1}
        ran = transport.run("echo hi", timeout=10)
        assert (ran.rc, ran.stdout) == (0, "hi\n")
    finally:
        transport.close()
    assert not transport.alive


def test_replies_split_across_segments_over_a_socketpair():
    """A 4-byte status may arrive in pieces: it is read whole; the rest stays for the next step."""
    ours, theirs = socket.socketpair()
    got: list[bytes] = []

    def peer():
        got.append(theirs.recv(64))  # VERSION
        theirs.sendall(b"VERSION_2")
        got.append(theirs.recv(64))  # VERSION_2
        theirs.sendall(b"PA")
        time.sleep(0.05)
        theirs.sendall(b"SS")
        got.append(theirs.recv(64))  # TOKEN ...
        theirs.sendall(b"PASS")

    thread = threading.Thread(target=peer)
    thread.start()
    outcome = hvsocket_io.run_exchange(ours, ServerClient(Secret("tk-split-5150")),
                                       time.monotonic() + 5, "vmid://test")
    thread.join(5)
    assert isinstance(outcome, Done)
    assert got == [b"VERSION", b"VERSION_2", b"TOKEN tk-split-5150"]
    ours.close()
    theirs.close()


def test_silent_peer_over_a_socketpair_is_bounded():
    ours, theirs = socket.socketpair()
    start = time.monotonic()
    with pytest.raises(ConnectFailed, match="no server version within the connect timeout"):
        hvsocket_io.run_exchange(ours, ServerClient(Secret("tk-quiet-8080")),
                                 time.monotonic() + 0.3, "vmid://test")
    assert 0.25 < time.monotonic() - start < 1.5
    assert theirs.recv(64) == b"VERSION"
    ours.close()
    theirs.close()


def test_benchmark_runs():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    try:
        import hvsocket as bench
    finally:
        sys.path.pop(0)
    data = bench.measure(rounds=3, opens=1)
    assert {k: len(v) for k, v in data.items()} == {
        "handshake": 1, "native open": 1, "stdio open": 1, "native run_ps": 3, "stdio run_ps": 3}
    assert all(0 < t < 10 for v in data.values() for t in v)
