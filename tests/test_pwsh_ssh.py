"""``pwsh+ssh://`` on the real sshd lab: its ``Subsystem powershell`` runs the test PSRP server."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_psdirect import Credential, Secret, Settings, TargetSession
from pytest_psdirect.errors import CommandTimeout, ConnectFailed, SessionBroken
from pytest_psdirect.lab.sshlab import SSHLab
from pytest_psdirect.pool import SessionPool
from pytest_psdirect.targets import parse_target
from pytest_psdirect.transports import TransportRegistry


def _url(lab: SSHLab, index: int = 0) -> str:
    assert lab.state is not None
    host = lab.state.hosts[index]
    return f"pwsh+ssh://{host.user}@{host.address}"


@pytest.fixture
def pool(lab_settings: Settings) -> Iterator[SessionPool]:
    p = SessionPool(TransportRegistry(), lab_settings, lambda t, r: None)
    yield p
    p.close_all()


@pytest.fixture
def ps(pool: SessionPool, ssh_lab: SSHLab) -> TargetSession:
    return pool.get(parse_target(_url(ssh_lab)))


def test_run_ps_over_the_subsystem(ps: TargetSession) -> None:
    r = ps.run_ps("psrp-test:streams")
    assert r.output == ["out"] and r.warning == ["careful"] and r.errors[0].message == "it broke"
    nasty = "a'b\"c $(x); `y`"
    assert ps.run_ps("psrp-test:echo", nasty, Name=nasty).output[0]["Params"] == {"Name": nasty}


def test_state_credential_and_timeout(ps: TargetSession) -> None:
    ps.run_ps("psrp-test:set", Value=[1, "two"])
    assert ps.run_ps("psrp-test:get").output == [[1, "two"]]
    row = ps.run_ps("psrp-test:cred", Cred=Credential("bob", Secret("pw-over-ssh"))).output[0]
    assert row["UserName"] == "bob"
    with pytest.raises(CommandTimeout):
        ps.run_ps("psrp-test:sleep", Seconds=30, timeout=0.5)
    assert ps.run_ps("psrp-test:get").output == [[1, "two"]]  # the pool survived the stop


def test_runs_as_the_lab_user(ps: TargetSession, ssh_lab: SSHLab) -> None:
    assert ps.run("id -un").stdout.strip() == ssh_lab.user


def test_peer_killed_mid_invoke(ps: TargetSession) -> None:
    start = time.monotonic()
    with pytest.raises(SessionBroken):
        ps.run_ps("psrp-test:die", timeout=30)
    assert time.monotonic() - start < 3.0


def test_put_get_over_ssh(ps: TargetSession, tmp_path: Path) -> None:
    shared = Path(tempfile.mkdtemp(prefix="psd-pwsh-ssh-"))  # the lab user writes here
    try:
        shared.chmod(0o1777)
        src = tmp_path / "src"
        src.write_bytes(os.urandom(1_500_000))
        ps.put(str(src), str(shared / "copy"))
        ps.get(str(shared / "copy"), str(tmp_path / "back"))
        assert (tmp_path / "back").read_bytes() == src.read_bytes()
        assert sorted(p.name for p in shared.iterdir()) == ["copy"]
    finally:
        for p in shared.iterdir():
            p.unlink()
        shared.rmdir()


def test_no_subsystem_is_a_clear_error(pool: SessionPool, ssh_lab: SSHLab,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_psdirect.transports import pwsh_ssh

    monkeypatch.setattr(pwsh_ssh.PwshSSHTransport, "subsystem", "no-such-subsystem")
    with pytest.raises(ConnectFailed) as info:
        pool.get(parse_target(_url(ssh_lab, 1)))
    assert "refused" in info.value.message and "Subsystem powershell" in (info.value.hint or "")


def test_pytester_hosts_pwsh_ssh(pytester: pytest.Pytester, ssh_lab: SSHLab) -> None:
    pytester.makepyfile("""
        def test_ps(target):
            r = target.run_ps("psrp-test:echo", "x", Name="y", check=True)
            assert r.output[0]["Args"] == ["x"] and r.output[0]["Params"] == {"Name": "y"}
    """)
    url = _url(ssh_lab)
    result = pytester.runpytest("--hosts", url, "--ssh-key", str(ssh_lab.key_file),
                                "--ssh-known-hosts", str(ssh_lab.known_hosts),
                                "-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*test_ps?{url}* PASSED*"])
