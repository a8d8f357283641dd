"""Jobs and the PowerShell prompt on ``pwsh+ssh://`` lab hosts (the sshd ``powershell``
subsystem runs the test PSRP server): a PowerShell job runs on a RunspacePool of its own (a
second connection), as ``Start-Job`` does; cancelling it closes that connection."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from conftest import lab_host, user_pids
from pytest_psdirect import SessionPool, Settings, TargetSession, TransportRegistry, parse_target
from pytest_psdirect.errors import CommandCancelled
from pytest_psdirect.lab import procs
from pytest_psdirect.lab.sshlab import SSHLab


@pytest.fixture
def ps(lab_settings: Settings, ssh_lab: SSHLab) -> Iterator[TargetSession]:
    pool = SessionPool(TransportRegistry(), lab_settings, lambda t, r: None)
    host = lab_host(ssh_lab, 0)
    yield pool.get(parse_target(f"pwsh+ssh://{host.user}@{host.address}"))
    pool.close_all()


def _servers(ssh_lab: SSHLab) -> list[int]:
    host = lab_host(ssh_lab, 0)
    return [p for p in user_pids(host) if "psrp_server.py" in procs.cmdline(p)]


def test_powershell_jobs_run_beside_the_session_on_a_pool_of_their_own(
        ps: TargetSession, ssh_lab: SSHLab) -> None:
    ps.run_ps("psrp-test:set", Value="session state")
    t0 = time.monotonic()
    slow = [ps.start_ps("psrp-test:sleep", Seconds=3) for _ in range(3)]
    state = ps.start_ps("psrp-test:get")
    assert time.monotonic() - t0 < 2.0, "start_ps must return at once"
    assert ps.run_ps("psrp-test:get").output == ["session state"]  # the session goes on
    assert state.result().output == [None]  # a pool of its own: Start-Job semantics
    for job in slow:
        assert job.result(timeout=20).output == ["started", "finished"]
    assert time.monotonic() - t0 < 8  # not 9 s: the three ran at once


def test_cancelling_a_powershell_job_ends_its_connection(ps: TargetSession,
                                                         ssh_lab: SSHLab) -> None:
    before = set(_servers(ssh_lab))
    job = ps.start_ps("psrp-test:sleep", Seconds=60)
    deadline = time.monotonic() + 10
    while not set(_servers(ssh_lab)) - before:
        assert time.monotonic() < deadline, "the job's server never started"
        time.sleep(0.05)
    job.cancel()
    with pytest.raises(CommandCancelled):
        job.result(timeout=10)
    deadline = time.monotonic() + 5
    while set(_servers(ssh_lab)) - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not set(_servers(ssh_lab)) - before, "the job's PowerShell process outlived its cancel"


def test_powershell_prompt(ssh_lab: SSHLab, tmp_path: Path) -> None:
    host = lab_host(ssh_lab, 0)
    url = f"pwsh+ssh://{host.user}@{host.address}"
    child = pexpect.spawn(sys.executable, ["-m", "pytest_psdirect.cli", "shell", url,
                                           "--ssh-key", str(ssh_lab.key_file),
                                           "--ssh-known-hosts", str(ssh_lab.known_hosts)],
                          env={"HOME": str(tmp_path), "TERM": "dumb",
                               "XDG_STATE_HOME": str(tmp_path)},
                          encoding="utf-8", timeout=30)
    child.logfile_read = sys.stdout
    prompt = f"[{url}]: PS> "
    child.expect_exact(prompt)
    child.sendline("psrp-test:objects")
    child.expect(r"Name\s+: W3SVC")
    child.expect_exact(prompt)
    child.sendline("psrp-test:throw")
    child.expect("terminating failure")
    child.expect_exact(f"[{url}]: PS [error]> ")
    child.sendline("exit")
    child.expect(pexpect.EOF)
