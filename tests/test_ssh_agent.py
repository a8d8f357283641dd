"""The command agent over real sshd hosts: cleanup on the host when a session ends, a dead agent
replaced, copies bounded by a stall timer and never partial, a vanished host costing one timeout."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_psdirect import (
    CommandTimeout,
    FileTransferError,
    SessionBroken,
    SessionPool,
    Settings,
    TargetSession,
    TransportRegistry,
    parse_target,
)
from pytest_psdirect.lab.sshlab import LabHost, SSHLab


def _user_processes(user: str, marker: str) -> list[str]:
    """Processes of the lab user whose command line holds ``marker`` (sshd's own excluded)."""
    ps = subprocess.run(["ps", "-u", user, "-o", "pid=,args="], capture_output=True, text=True)
    return [line for line in ps.stdout.splitlines() if marker in line and "sshd:" not in line]


def _wait_none(user: str, marker: str, seconds: float = 4.0) -> list[str]:
    deadline = time.monotonic() + seconds
    while (left := _user_processes(user, marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


@pytest.fixture
def pool(ssh_lab: SSHLab) -> Iterator[SessionPool]:
    settings = Settings(ssh_key=str(ssh_lab.key_file), known_hosts=str(ssh_lab.known_hosts),
                        connect_timeout=2, command_timeout=30)
    p = SessionPool(TransportRegistry(), settings, lambda t, r: None)
    yield p
    p.close_all()


@pytest.fixture
def host(ssh_lab: SSHLab) -> LabHost:
    assert ssh_lab.state is not None
    return ssh_lab.state.hosts[2]


@pytest.fixture
def session(pool: SessionPool, host: LabHost) -> TargetSession:
    return pool.get(parse_target(host.url))


def test_closing_the_session_ends_every_process_it_started(pool: SessionPool,
                                                          session: TargetSession,
                                                          host: LabHost) -> None:
    agent = session.check_output("echo $PPID")  # the agent is the command shell's parent
    session.run("sleep 101.1 >/dev/null 2>&1 &")  # left behind by a command
    session.run("setsid sleep 101.3 >/dev/null 2>&1 </dev/null &")  # detached from our groups
    with pytest.raises(CommandTimeout):
        session.run("sleep 101.2", timeout=0.3)  # killed at its timeout already
    assert _user_processes(host.user, "sleep 101.1")
    assert _wait_none(host.user, "sleep 101.2") == []
    pool.close_all()
    assert _wait_none(host.user, "sleep 101.1") == []
    assert _wait_none(host.user, "sleep 101.3") == []
    assert [p for p in _user_processes(host.user, "python3") if p.split()[0] == agent] == []


def test_a_dropped_connection_ends_what_the_session_started(session: TargetSession,
                                                            host: LabHost) -> None:
    session.run("sleep 102.1 >/dev/null 2>&1 &")
    subprocess.run(["ip", "netns", "exec", host.netns, "ss", "-K", "state", "established",
                    "sport", "=", ":22"], check=True, capture_output=True)
    assert _wait_none(host.user, "sleep 102.1") == []
    session.ensure_open()  # reopened once, for this break
    assert session.check_output("echo again") == "again"


def test_agent_killed_on_the_host_is_replaced(session: TargetSession, host: LabHost) -> None:
    pid = session.check_output("echo $PPID")  # the agent is the command shell's parent
    subprocess.run(["kill", "-9", pid], check=True)
    time.sleep(0.3)
    assert session.check_output("echo fine") == "fine"
    with pytest.raises(SessionBroken, match="ended while running a command"):
        session.run("kill -9 $PPID; sleep 5")
    assert session.check_output("echo still") == "still"


def test_copies_are_atomic_and_bounded_when_the_host_vanishes(session: TargetSession,
                                                              host: LabHost,
                                                              tmp_path: Path) -> None:
    session.run(f"head -c 50000000 /dev/urandom > /tmp/psd-{host.user}-big")
    local = tmp_path / "big"
    subprocess.run(["ip", "-n", host.netns, "link", "set", "eth0", "down"], check=True)
    try:
        start = time.monotonic()
        with pytest.raises(FileTransferError, match=r"stalled|failed"):
            session.get(f"/tmp/psd-{host.user}-big", str(local))
        assert time.monotonic() - start < 5  # the stall bound is the connect timeout, 2 s
        assert list(tmp_path.iterdir()) == []  # no partial file, under any name
        start = time.monotonic()
        with pytest.raises(SessionBroken):
            session.run("true")  # reopened once, which fails: remembered
        assert time.monotonic() - start < 4
        start = time.monotonic()
        with pytest.raises(SessionBroken, match="reopening it failed"):
            session.run("true")
        assert time.monotonic() - start < 0.1
    finally:
        subprocess.run(["ip", "-n", host.netns, "link", "set", "eth0", "up"], check=True)


def test_failed_put_leaves_nothing_behind(session: TargetSession, host: LabHost,
                                         tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.write_bytes(b"x" * 1000)
    session.run(f"mkdir -p /tmp/psd-{host.user}-ro && chmod 500 /tmp/psd-{host.user}-ro")
    with pytest.raises(FileTransferError):
        session.put(str(src), f"/tmp/psd-{host.user}-ro/f")
    assert session.run(f"ls -A /tmp/psd-{host.user}-ro").stdout == ""
    session.put(str(src), f"/tmp/psd-{host.user}-put")
    listing = session.run(f"wc -c < /tmp/psd-{host.user}-put; ls -a /tmp | grep -c 'psdirect-.*[.]part$'")
    assert listing.stdout == "1000\n0\n"


def test_a_vanished_host_costs_one_command_timeout(session: TargetSession, host: LabHost) -> None:
    subprocess.run(["ip", "-n", host.netns, "link", "set", "eth0", "down"], check=True)
    try:
        start = time.monotonic()
        with pytest.raises(CommandTimeout, match="stopped answering"):
            session.run("true", timeout=1)
        assert 1 <= time.monotonic() - start < 1.8
    finally:
        subprocess.run(["ip", "-n", host.netns, "link", "set", "eth0", "up"], check=True)


def test_session_opened_hook_runs_after_a_reopen(ssh_lab: SSHLab, host: LabHost) -> None:
    opened: list[str] = []
    settings = Settings(ssh_key=str(ssh_lab.key_file), known_hosts=str(ssh_lab.known_hosts),
                        connect_timeout=2)
    pool = SessionPool(TransportRegistry(), settings, lambda t, r: None,
                       on_opened=lambda s: opened.append(s.url))
    try:
        session = pool.get(parse_target(host.url))
        subprocess.run(["ip", "netns", "exec", host.netns, "ss", "-K", "state", "established",
                        "sport", "=", ":22"], check=True, capture_output=True)
        deadline = time.monotonic() + 5
        while session._transport.alive and time.monotonic() < deadline:
            time.sleep(0.02)
        assert session.check_output("echo back") == "back"
        assert opened == [host.url, host.url]
    finally:
        pool.close_all()
