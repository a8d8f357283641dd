"""Background jobs (``target.start``): concurrent on one agent, cancelled with their processes,
bounded by their timeout, cleaned up at teardown; on ``local://`` and on the real SSH lab."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from conftest import Faults, lab_host, user_pids, wait_user_pids_gone
from pytest_psdirect import (
    CommandTimeout,
    SessionBroken,
    SessionPool,
    Settings,
    TargetSession,
    TransportRegistry,
    parse_target,
)
from pytest_psdirect.errors import CommandCancelled
from pytest_psdirect.lab import procs
from pytest_psdirect.lab.sshlab import LabHost, SSHLab
from pytest_psdirect.transports.base import Transport
from pytest_psdirect.transports.local import LocalTransport


def _started(marker: str, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not procs.cmdline_pids(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    return bool(procs.cmdline_pids(marker))


def _gone(marker: str, seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while procs.cmdline_pids(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not procs.cmdline_pids(marker)


def wait_user_pids_gone_matching(host: LabHost, marker: str,
                                 timeout: float = 3.0) -> tuple[list[int], float]:
    """Like conftest's wait_user_pids_gone, only for processes whose cmdline holds ``marker``."""
    start = time.monotonic()
    while True:
        left = [p for p in user_pids(host) if marker in procs.cmdline(p)]
        if not left or time.monotonic() - start > timeout:
            return left, time.monotonic() - start
        time.sleep(0.05)


@pytest.fixture
def local() -> Iterator[TargetSession]:
    pool = SessionPool(TransportRegistry(), Settings(command_timeout=30), lambda t, r: None)
    yield pool.get(parse_target("local://"))
    pool.close_all()


def test_start_returns_at_once_and_result_is_what_run_returns(local: TargetSession) -> None:
    t0 = time.monotonic()
    job = local.start("sleep 1.5; echo %s; echo err >&2; exit 3", "a b")
    assert time.monotonic() - t0 < 1.0 and not job.done
    assert local.check_output("echo meanwhile") == "meanwhile"  # run() goes on beside it
    result = job.result()
    assert (result.rc, result.stdout, result.stderr) == (3, "a b\n", "err\n")
    assert job.done and job.wait(0)


def test_jobs_run_concurrently_each_in_its_own_shell(local: TargetSession) -> None:
    t0 = time.monotonic()
    jobs = [local.start("sleep 2; echo $$") for _ in range(10)]
    pids = {job.result().stdout for job in jobs}
    assert len(pids) == 10
    assert time.monotonic() - t0 < 8  # not 20 s: they ran at once


def test_concurrent_outputs_never_mix(local: TargetSession) -> None:
    """Each job's output is its own, byte for byte, while others flood theirs."""
    jobs = {c: local.start(f"head -c 3000000 /dev/zero | tr '\\0' {c}; echo err-{c} >&2")
            for c in "abcd"}
    assert local.run("head -c 1000000 /dev/zero | tr '\\0' z").stdout == "z" * 1000000
    for c, job in jobs.items():
        result = job.result()
        assert result.stdout_bytes == c.encode() * 3000000 and result.stderr == f"err-{c}\n"


def test_cancel_kills_the_remote_process_group(local: TargetSession) -> None:
    job = local.start("sleep 1001.31 & sleep 1001.32; echo never")
    assert _started("sleep 1001.31") and _started("sleep 1001.32")
    assert job.cancel() is True
    assert _gone("sleep 1001.31") and _gone("sleep 1001.32")
    with pytest.raises(CommandCancelled, match="cancelled"):
        job.result()
    assert job.cancel() is False  # already ended
    assert local.check_output("echo fine") == "fine"


def test_a_job_past_its_timeout_is_killed(local: TargetSession) -> None:
    job = local.start("echo partial; sleep 1001.4", timeout=2)
    with pytest.raises(CommandTimeout) as info:
        job.result(timeout=5)
    assert info.value.stdout == b"partial\n"
    assert _gone("sleep 1001.4")


def test_result_with_a_timeout_leaves_the_job_running(local: TargetSession) -> None:
    job = local.start("sleep 0.6; echo ok")
    with pytest.raises(TimeoutError, match="still running"):
        job.result(timeout=0.05)
    assert job.result(timeout=5).stdout == "ok\n"


def test_bad_values_raise_at_start(local: TargetSession) -> None:
    with pytest.raises(ValueError, match="NUL"):
        local.start("echo \x00")
    with pytest.raises(ValueError, match="finite"):
        local.start("true", timeout=float("nan"))


def test_closing_the_session_cancels_running_jobs(local: TargetSession) -> None:
    job = local.start("sleep 1001.5")
    assert _started("sleep 1001.5")
    local.close()
    assert _gone("sleep 1001.5")
    with pytest.raises(CommandCancelled):
        job.result(timeout=5)


def test_fallback_jobs_run_on_a_second_connection_and_cancel_closes_it() -> None:
    """What a transport without concurrency of its own gets (Transport.start): a worker
    thread on a sibling connection; cancelling closes that connection, ending its processes."""
    transport = LocalTransport(parse_target("local://"), None, Settings())
    transport.open()
    try:
        done = Transport.start(transport, "echo $PSDIRECT_SESSION", timeout=10)
        own = transport.run("echo $PSDIRECT_SESSION", timeout=10).stdout
        assert done.result().stdout != own  # another connection (another agent)
        job = Transport.start(transport, "sleep 1001.6", timeout=30)
        assert _started("sleep 1001.6")
        job.cancel()
        assert _gone("sleep 1001.6")
        with pytest.raises(CommandCancelled):
            job.result()
    finally:
        transport.close()


# ---- the SSH lab -------------------------------------------------------------------------------
def test_twenty_jobs_on_three_hosts(ssh_lab: SSHLab, faults: Faults) -> None:
    """17 one-second jobs, one cancelled, one past its timeout, one on a host that vanishes."""
    settings = Settings(ssh_key=str(ssh_lab.key_file), known_hosts=str(ssh_lab.known_hosts),
                        connect_timeout=2, command_timeout=30)
    pool = SessionPool(TransportRegistry(), settings, lambda t, r: None)
    try:
        hosts = [lab_host(ssh_lab, i) for i in range(3)]
        s1, s2, s3 = (pool.get(parse_target(h.url)) for h in hosts)
        t0 = time.monotonic()
        normal = [(s, s.start("sleep 1; echo %s $$", str(i))) for i, s in
                  enumerate([s1, s2] * 8 + [s3])]
        cancelled = s1.start("sleep 1002.1; echo never")
        late = s2.start("sleep 1002.2", timeout=1.5)
        doomed = s3.start("sleep 1002.3; echo never", timeout=4)
        assert time.monotonic() - t0 < 3.0, "start() must return at once"
        deadline = time.monotonic() + 10
        while not wait_user_pids_gone_matching(hosts[0], "sleep 1002.1", 0)[0]:
            assert time.monotonic() < deadline, "the job to cancel never started"
            time.sleep(0.05)
        cancelled.cancel()
        left, _ = wait_user_pids_gone_matching(hosts[0], "sleep 1002.1")
        assert left == []
        for i, (_, job) in enumerate(normal):
            result = job.result(timeout=10)
            assert result.rc == 0 and result.stdout.startswith(f"{i} ")
        wall = time.monotonic() - t0
        print(f"17 one-second jobs on 3 hosts: {wall:.2f}s")
        assert len({job.result().stdout for _, job in normal}) == 17  # 17 shells of their own
        with pytest.raises(CommandTimeout, match=r"timed out after 1\.5s"):
            late.result(timeout=5)
        assert wait_user_pids_gone_matching(hosts[1], "sleep 1002.2")[0] == []
        faults.vanish(hosts[2])
        vanish_at = time.monotonic()
        with pytest.raises((CommandTimeout, SessionBroken)) as info:
            doomed.result(timeout=15)
        waited = time.monotonic() - vanish_at
        print(f"job on the vanished host ended after {waited:.2f}s: {info.value}")
        assert waited < 4 + 2.0, "bounded by the job's own timeout (+ grace)"
        with pytest.raises(CommandCancelled):
            cancelled.result()
        assert s1.check_output("echo still") == "still"  # the other hosts are unaffected
    finally:
        pool.close_all()


def test_session_teardown_cancels_a_running_job_on_the_lab(ssh_lab: SSHLab) -> None:
    settings = Settings(ssh_key=str(ssh_lab.key_file), known_hosts=str(ssh_lab.known_hosts),
                        connect_timeout=2, command_timeout=30)
    pool = SessionPool(TransportRegistry(), settings, lambda t, r: None)
    host = lab_host(ssh_lab, 1)
    session = pool.get(parse_target(host.url))
    job = session.start("sleep 1003.1")
    deadline = time.monotonic() + 5
    while not wait_user_pids_gone_matching(host, "sleep 1003.1", 0)[0]:
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.05)
    pool.close_all()
    assert wait_user_pids_gone_matching(host, "sleep 1003.1")[0] == []
    with pytest.raises(CommandCancelled):
        job.result(timeout=5)
    assert wait_user_pids_gone(host)[0] == []  # nothing of the session is left on the host


def test_closing_a_session_whose_host_vanished_is_bounded(ssh_lab: SSHLab,
                                                          faults: Faults) -> None:
    """Five long jobs on a host whose link goes down: the teardown cancels all of them within
    one shared bound instead of waiting out their 600 s timeouts (or 10 s each)."""
    settings = Settings(ssh_key=str(ssh_lab.key_file), known_hosts=str(ssh_lab.known_hosts),
                        connect_timeout=2, command_timeout=30)
    pool = SessionPool(TransportRegistry(), settings, lambda t, r: None)
    host = lab_host(ssh_lab, 2)
    session = pool.get(parse_target(host.url))
    jobs = [session.start("sleep 1005.1", timeout=600) for _ in range(5)]
    deadline = time.monotonic() + 10
    while len(wait_user_pids_gone_matching(host, "sleep 1005.1", 0)[0]) < 5:
        assert time.monotonic() < deadline, "the jobs never started"
        time.sleep(0.05)
    faults.vanish(host)
    t0 = time.monotonic()
    pool.close_all()
    took = time.monotonic() - t0
    print(f"closing with 5 jobs on a vanished host took {took:.2f}s")
    assert took < 8
    for job in jobs:
        with pytest.raises(CommandCancelled):
            job.result(timeout=1)
