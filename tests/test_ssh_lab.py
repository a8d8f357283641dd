"""SSH against real OpenSSH sshd hosts in network namespaces (no mocked SSH anywhere)."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import CmdlineSampler, wrong_credential
from pytest_psdirect import (
    AuthenticationFailed,
    CommandTimeout,
    ConnectFailed,
    Credential,
    HostKeyMismatch,
    SessionPool,
    Settings,
    TargetSession,
    TransportRegistry,
    parse_target,
)
from pytest_psdirect.lab.sshlab import SSHLab
from pytest_psdirect.transports.ssh import SSHTransport


def _open(url: str, settings: Settings, cred: Credential | None = None) -> SSHTransport:
    transport = SSHTransport(parse_target(url), cred, settings)
    transport.open()
    return transport


@pytest.fixture
def pool(lab_settings: Settings) -> Iterator[SessionPool]:
    p = SessionPool(TransportRegistry(), lab_settings, lambda t, r: None)
    yield p
    p.close_all()


@pytest.fixture
def lab1(pool: SessionPool, lab_urls: list[str]) -> TargetSession:
    return pool.get(parse_target(lab_urls[0]))


def test_key_auth_runs_commands(lab1: TargetSession) -> None:
    r = lab1.run("id -un; printf err >&2; exit 3")
    assert (r.rc, r.stdout, r.stderr) == (3, f"{lab1.spec.user}\n", "err")


def test_each_host_is_its_own_network_namespace(pool: SessionPool, lab_urls: list[str]) -> None:
    addresses = {pool.get(parse_target(u)).check_output("ip -4 -o addr show eth0") for u in lab_urls}
    assert len(addresses) == 3


def test_password_auth(lab_urls: list[str], ssh_lab: SSHLab, lab_password: Credential) -> None:
    settings = Settings(known_hosts=str(ssh_lab.known_hosts), connect_timeout=5)
    transport = _open(lab_urls[1], settings, lab_password)
    try:
        assert transport.run("echo ok", timeout=5).stdout == "ok\n"
    finally:
        transport.close()


def test_wrong_password_is_authentication_failed(lab_urls: list[str], ssh_lab: SSHLab) -> None:
    settings = Settings(known_hosts=str(ssh_lab.known_hosts), connect_timeout=5)
    with pytest.raises(AuthenticationFailed, match="authentication failed for user") as e:
        _open(lab_urls[1], settings, wrong_credential())
    assert "definitely-not" not in str(e.value)


def test_unknown_host_key_is_refused_then_allowed_insecure(lab_urls: list[str],
                                                            ssh_lab: SSHLab) -> None:
    strict = Settings(ssh_key=str(ssh_lab.key_file), connect_timeout=5)
    with pytest.raises(HostKeyMismatch, match="not in known_hosts") as info:
        _open(lab_urls[0], strict)
    assert "ssh-keyscan" in str(info.value)
    _open(lab_urls[0] + "?insecure=1", strict).close()


def test_changed_host_key_is_refused(lab_urls: list[str], ssh_lab: SSHLab, tmp_path: Path) -> None:
    lines = ssh_lab.known_hosts.read_text().splitlines()
    wrong = tmp_path / "known_hosts"  # lab1's address with lab2's key
    wrong.write_text(f"{lines[0].split()[0]} {' '.join(lines[1].split()[1:])}\n")
    with pytest.raises(HostKeyMismatch, match="differs from known_hosts"):
        _open(lab_urls[0], Settings(ssh_key=str(ssh_lab.key_file), known_hosts=str(wrong)))


def test_refused_port_fails_fast(lab_settings: Settings, lab_urls: list[str]) -> None:
    start = time.monotonic()
    with pytest.raises(ConnectFailed, match="connection refused"):
        _open(lab_urls[0] + ":2222", lab_settings)
    assert time.monotonic() - start < 2


def test_unreachable_host_is_bounded_by_the_connect_timeout(ssh_lab: SSHLab) -> None:
    start = time.monotonic()
    silent = f"{ssh_lab.subnet}.99"  # inside the lab's bridge subnet, no host behind it
    with pytest.raises(ConnectFailed, match=rf"no answer from {re.escape(silent)}:22 within 1s"):
        _open(f"ssh://nobody@{silent}", Settings(connect_timeout=1))
    assert time.monotonic() - start < 3


def test_timeout_kills_the_remote_command(lab1: TargetSession) -> None:
    marker = f"sleep 27.{os.getpid()}"  # unique: other runs may share this machine
    with pytest.raises(CommandTimeout):
        lab1.run(marker, timeout=0.3)
    time.sleep(0.2)
    left = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout
    assert left == "", f"remote command survived the timeout: {left}"
    assert lab1.run("echo back").stdout == "back\n"


def test_cut_connection_is_reopened_once(lab1: TargetSession, ssh_lab: SSHLab) -> None:
    assert ssh_lab.state is not None
    netns = ssh_lab.state.hosts[0].netns
    before = lab1.check_output("echo $PPID")
    subprocess.run(["ip", "netns", "exec", netns, "ss", "-K", "state", "established",
                    "sport", "=", ":22"], check=True, capture_output=True)
    deadline = time.monotonic() + 5
    while lab1._transport.alive and time.monotonic() < deadline:  # paramiko notices the RST
        time.sleep(0.02)
    assert lab1.check_output("echo $PPID") != before  # a new connection, a new sshd child


def test_put_get_over_sftp(lab1: TargetSession, tmp_path: Path) -> None:
    src = tmp_path / "blob"
    src.write_bytes(bytes(range(256)) * 400)
    remote = f"/tmp/psd-blob-{tmp_path.name}-{os.getpid()}"  # lab hosts share this /tmp
    try:
        lab1.put(str(src), remote)
        lab1.get(remote, str(tmp_path / "back"))
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(remote)
    assert (tmp_path / "back").read_bytes() == src.read_bytes()
    from pytest_psdirect import FileTransferError

    with pytest.raises(FileTransferError, match="/nonexistent/x"):
        lab1.get("/nonexistent/x", str(tmp_path / "y"))


def test_testinfra_over_ssh(lab1: TargetSession) -> None:
    host = lab1.testinfra
    assert host.file("/etc/ssh/sshd_config").contains("PermitRootLogin no")
    assert host.user().name == lab1.spec.user
    assert host.package("openssh-server").is_installed
    assert host.process.filter(comm="sshd")


def test_no_secret_in_any_process_argv(lab_urls: list[str], ssh_lab: SSHLab,
                                       lab_password: Credential) -> None:
    settings = Settings(known_hosts=str(ssh_lab.known_hosts))
    with CmdlineSampler(lab_password.secret.reveal().encode(), environ=True) as sampler:
        transport = _open(lab_urls[2], settings, lab_password)  # sampled while connecting,
        try:                                                     # running and closing
            transport.run("env; sleep 0.2", timeout=5)
        finally:
            transport.close()
    assert sampler.samples > 3
    assert sampler.hits == [], sampler.hits
