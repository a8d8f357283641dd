"""Errors say the real cause, against real sshd hosts of the lab where one exists.

Unreachable addresses are only ever inside the lab's own subnet (or inside a lab namespace).
"""

from __future__ import annotations

import errno
import subprocess
import sys
import textwrap
from pathlib import Path

import paramiko
import pytest

from pytest_psdirect import (
    AuthenticationFailed,
    ConnectFailed,
    OutputTooLarge,
    Settings,
    TargetSpecError,
    parse_target,
)
from pytest_psdirect.lab.sshlab import SSHLab
from pytest_psdirect.transports.ssh import SSHTransport, _socket_error


def _open(url: str, settings: Settings) -> SSHTransport:
    transport = SSHTransport(parse_target(url), None, settings)
    try:
        transport.open()
    except BaseException:
        transport.close()
        raise
    return transport


@pytest.fixture
def bare_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME with no ~/.ssh keys and no agent, so only what the test gives is tried."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return home


def test_no_route_is_not_connection_refused(ssh_lab: SSHLab) -> None:
    assert ssh_lab.state is not None
    url = f"ssh://{ssh_lab.user}@{ssh_lab.state.subnet}.250"  # in the lab's /24, no such host
    with pytest.raises(ConnectFailed, match=r"no route to host .*\.250:22") as info:
        _open(url, Settings(connect_timeout=10, known_hosts=str(ssh_lab.known_hosts)))
    assert "refused" not in str(info.value)


def test_network_unreachable_inside_a_lab_namespace(ssh_lab: SSHLab) -> None:
    """From inside lab2's namespace (only its /24 is routed) another network is unreachable."""
    assert ssh_lab.state is not None
    code = textwrap.dedent("""
        from pytest_psdirect import ConnectFailed, Settings, parse_target
        from pytest_psdirect.transports.ssh import SSHTransport
        t = SSHTransport(parse_target("ssh://u@10.99.99.5"), None, Settings(connect_timeout=5))
        try:
            t.open()
        except ConnectFailed as exc:
            print(exc)
    """)
    out = subprocess.run(["ip", "netns", "exec", ssh_lab.state.hosts[1].netns, sys.executable,
                          "-c", code], capture_output=True, text=True, timeout=30)
    assert "no route to host 10.99.99.5:22" in out.stdout, out.stdout + out.stderr


def test_refused_port_is_connection_refused(ssh_lab: SSHLab, lab_urls: list[str]) -> None:
    with pytest.raises(ConnectFailed, match=r"connection refused by .*:2 \(hint: is sshd running"):
        _open(lab_urls[1] + ":2", Settings(connect_timeout=5))


def test_wrapped_errors_are_inspected() -> None:
    refused = paramiko.ssh_exception.NoValidConnectionsError(
        {("10.0.0.1", 22): OSError(errno.ECONNREFUSED, "Connection refused")})
    unreachable = paramiko.ssh_exception.NoValidConnectionsError(
        {("10.0.0.1", 22): OSError(errno.ENETUNREACH, "Network is unreachable"),
         ("::1", 22, 0, 0): OSError(errno.ECONNREFUSED, "Connection refused")})
    assert "connection refused" in str(_socket_error(refused, "h:22", "ssh://h"))
    assert "no route to host" in str(_socket_error(unreachable, "h:22", "ssh://h"))
    other = _socket_error(OSError(errno.EACCES, "Permission denied"), "h:22", "ssh://h")
    assert "cannot connect to h:22: Permission denied" in str(other)


def test_nothing_to_authenticate_with_is_an_auth_error(ssh_lab: SSHLab, lab_urls: list[str],
                                                       bare_home: Path) -> None:
    with pytest.raises(AuthenticationFailed, match="nothing to authenticate user") as info:
        _open(lab_urls[1], Settings(connect_timeout=5, known_hosts=str(ssh_lab.known_hosts)))
    assert "--ssh-key" in str(info.value) and "--credential-env" in str(info.value)
    assert "speak SSH" not in str(info.value)


def test_a_given_key_is_the_only_key_tried(ssh_lab: SSHLab, lab_urls: list[str],
                                           bare_home: Path, tmp_path: Path) -> None:
    """The lab's key sits in ~/.ssh as a default key; paramiko must not fall back to it."""
    default_key = bare_home / ".ssh" / "id_ed25519"
    default_key.write_bytes(ssh_lab.key_file.read_bytes())
    default_key.chmod(0o600)
    settings = Settings(connect_timeout=5, known_hosts=str(ssh_lab.known_hosts))
    _open(lab_urls[1], settings).close()  # control: the default key works when none is given
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    with pytest.raises(AuthenticationFailed, match="authentication failed for user"):
        _open(lab_urls[1], Settings(connect_timeout=5, known_hosts=str(ssh_lab.known_hosts),
                                    ssh_key=str(other)))


def test_missing_url_known_hosts_is_named(tmp_path: Path) -> None:
    with pytest.raises(TargetSpecError, match=r"known_hosts file .*/nope does not exist"):
        _open(f"ssh://u@127.0.0.1?known_hosts={tmp_path}/nope", Settings(connect_timeout=1))


@pytest.mark.parametrize("bad", ["nan", "inf", "-1", "1e309"])
def test_bad_url_timeout_when_opened_directly(bad: str) -> None:
    with pytest.raises(TargetSpecError, match=rf"\?timeout='{bad}'"):
        _open(f"ssh://u@127.0.0.1?timeout={bad}", Settings())


def test_output_too_large_says_how_to_fix() -> None:
    err = OutputTooLarge("output passed 1024 bytes; killed", target="local://", command="yes",
                         limit=1024, stdout=b"y\n" * 512)
    text = str(err)
    assert text.startswith("local://: output passed 1024 bytes; killed (hint: ")
    assert "--psdirect-max-output" in text and "target.get" in text
    assert (err.command, err.limit, len(err.stdout), err.stderr) == ("yes", 1024, 1024, b"")


MARKED = """
import pytest

@pytest.mark.targets({args})
def test_x(target):
    pass
"""


@pytest.mark.parametrize(("args", "message"), [
    ('"web01"', "*'web01' is neither an inventory name nor a URL (inventory names: me, other)*"),
    ('"admin@web01"', "*'admin@web01' is neither an inventory name nor a URL*ssh://admin@web01*"),
    ('"ftp://h"', "*unknown scheme 'ftp'*use one of: container, local, pwsh, pwsh+ssh, qemu, ssh, vm, "
     "vmid, winrm*"),
])
def test_marker_names_that_are_not_targets(pytester: pytest.Pytester, args: str,
                                           message: str) -> None:
    pytester.makefile(".toml", fleet='[targets.me]\nurl = "local://"\n'
                                     '[targets.other]\nurl = "local://localhost?x=1"\n')
    pytester.makepyfile(MARKED.format(args=args))
    result = pytester.runpytest("--inventory", "fleet.toml")
    assert result.ret == pytest.ExitCode.INTERRUPTED  # a collection error: nothing runs
    result.stdout.fnmatch_lines(["*@pytest.mark.targets: " + message.lstrip("*")])


def test_marker_bare_word_without_inventory(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(MARKED.format(args='"web01"'))
    result = pytester.runpytest("--hosts", "local://")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*inventory names: none: no --inventory given*"])


def test_marker_inventory_names_and_urls_still_work(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", fleet='[targets.me]\nurl = "local://"\n')
    pytester.makepyfile(MARKED.format(args='"me", "local://localhost?x=1"'))
    result = pytester.runpytest("--inventory", "fleet.toml", "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_x?local://? PASSED*", "*test_x?local://?x=1? PASSED*"])
