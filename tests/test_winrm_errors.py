"""WinRM failures against real local peers on 127.0.0.1: our errors, with hints, in bounded time.

Peers: an HTTP server answering 401, a TLS server with a self-signed certificate, a closed port,
and a socket that accepts connections and never answers.
"""

from __future__ import annotations

import http.server
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_psdirect import Credential, Secret, Settings
from pytest_psdirect.errors import AuthenticationFailed, ConnectFailed, CredentialError, TargetSpecError
from pytest_psdirect.targets import parse_target
from pytest_psdirect.transports.winrm import InsecureCertificateWarning, WinRMTransport

CRED = Credential("psdtest", Secret("winrm-test-secret-4d1c"))


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.send_response(401)
        self.send_header("WWW-Authenticate", "Basic realm=\"WSMAN\"")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _serve(server: http.server.HTTPServer) -> Iterator[int]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def http_401() -> Iterator[int]:
    yield from _serve(http.server.HTTPServer(("127.0.0.1", 0), _Handler))


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True,
                   timeout=60)
    return cert, key


@pytest.fixture
def https_401(self_signed: tuple[Path, Path]) -> Iterator[int]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*self_signed)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    yield from _serve(server)


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once this is closed


@pytest.fixture
def blackhole() -> Iterator[int]:
    """Accepts connections (the kernel does, via the backlog) and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield int(s.getsockname()[1])


def _open(url: str, credential: Credential | None = CRED, timeout: float = 3) -> WinRMTransport:
    transport = WinRMTransport(parse_target(url), credential, Settings(connect_timeout=timeout))
    try:
        transport.open()
    finally:
        transport.close()
    return transport


def test_401_is_authentication_failed_with_a_hint(http_401: int) -> None:
    with pytest.raises(AuthenticationFailed, match="rejected the credential") as info:
        _open(f"winrm://127.0.0.1:{http_401}?auth=ntlm")
    assert "DOMAIN\\user" in (info.value.hint or "")
    assert "winrm-test-secret" not in str(info.value)


def test_basic_auth_401_names_what_basic_needs(https_401: int) -> None:
    with pytest.warns(InsecureCertificateWarning), pytest.raises(AuthenticationFailed) as info:
        _open(f"winrm://127.0.0.1:{https_401}?auth=basic&ssl=1&cert_validation=0")
    assert "Basic enabled" in (info.value.hint or "")


def test_untrusted_certificate_is_refused_by_default(https_401: int) -> None:
    with pytest.raises(ConnectFailed, match="TLS certificate is not trusted") as info:
        _open(f"winrm://127.0.0.1:{https_401}?ssl=1")
    assert "cert_validation=PATH" in (info.value.hint or "")
    assert not isinstance(info.value, AuthenticationFailed)


def test_ca_bundle_path_validates_the_certificate(https_401: int,
                                                  self_signed: tuple[Path, Path]) -> None:
    """With the CA bundle given, TLS succeeds and the 401 behind it is what remains."""
    with pytest.raises(AuthenticationFailed):
        _open(f"winrm://127.0.0.1:{https_401}?ssl=1&auth=ntlm&cert_validation={self_signed[0]}")


def test_validation_off_is_warned(https_401: int) -> None:
    with pytest.warns(InsecureCertificateWarning, match="not validated"), \
            pytest.raises(AuthenticationFailed):
        _open(f"winrm://127.0.0.1:{https_401}?ssl=1&cert_validation=0")


def test_closed_port_is_refused_with_a_hint(closed_port: int) -> None:
    start = time.monotonic()
    with pytest.raises(ConnectFailed, match="connection refused") as info:
        _open(f"winrm://127.0.0.1:{closed_port}")
    assert "Enable-PSRemoting" in (info.value.hint or "")
    assert time.monotonic() - start < 2


def test_silent_peer_costs_the_connect_timeout(blackhole: int) -> None:
    start = time.monotonic()
    with pytest.raises(ConnectFailed, match="sent no answer in time"):
        _open(f"winrm://127.0.0.1:{blackhole}", timeout=1)
    elapsed = time.monotonic() - start
    assert 1 <= elapsed < 1 + 2 + 1.5  # connect timeout + the 2 s pypsrp adds to HTTP reads


def test_url_timeout_bounds_the_connect(blackhole: int) -> None:
    start = time.monotonic()
    with pytest.raises(ConnectFailed):
        _open(f"winrm://127.0.0.1:{blackhole}?timeout=1", timeout=30)
    assert time.monotonic() - start < 4.5


def test_negotiate_without_credential_says_how_to_give_one() -> None:
    with pytest.raises(CredentialError, match="auth=negotiate needs a user name") as info:
        _open("winrm://127.0.0.1:1", credential=None)
    assert "--credential-env" in (info.value.hint or "")


def test_credential_requirement_depends_on_auth() -> None:
    assert WinRMTransport.credential_required_for(parse_target("winrm://h"))
    assert WinRMTransport.credential_required_for(parse_target("winrm://h?auth=ntlm"))
    assert not WinRMTransport.credential_required_for(parse_target("winrm://h?auth=kerberos"))


@pytest.mark.parametrize(("url", "message"), [
    ("winrm://h?auth=digest", "?auth='digest' is not one of basic"),
    ("winrm://h?ssl=maybe", "?ssl='maybe' is not a boolean"),
    ("winrm://h?encryption=sometimes", "?encryption='sometimes' is not one of auto"),
    ("winrm://h?auth=basic", "auth=basic over http sends everything in clear text"),
    ("winrm://h?cert_validation=/no/ca.pem&ssl=1", "no such CA bundle file"),
    ("winrm://h?colour=blue", "unknown winrm:// option 'colour'"),
    ("winrm://h?auth=certificate&ssl=1", "auth=certificate needs ssl=1, cert_pem"),
])
def test_bad_url_options_are_named(url: str, message: str) -> None:
    with pytest.raises(TargetSpecError) as info:
        _open(url)
    assert message in str(info.value)
