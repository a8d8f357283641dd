"""Failures with real parts: hosts that vanish or reset, Ctrl-C, a killed xdist worker, leftovers.

All of these use lab3 (index 2) so that counting the lab user's processes there sees only what
the test itself started. Measured seconds and counts are printed (run with ``-s`` to see them).
"""

from __future__ import annotations

import inspect
import os
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import (
    Faults,
    describe,
    kill_executor,
    lab_host,
    reset_connections,
    user_pids,
    wait_user_pids_gone,
)
from pytest_psdirect import PSDirectError, SessionPool, Settings, TransportRegistry, parse_target
from pytest_psdirect import errors as errors_module
from pytest_psdirect.lab import procs
from pytest_psdirect.lab.sshlab import LabHost, SSHLab

PLUGIN_ERRORS = {name for name, obj in vars(errors_module).items()
                 if inspect.isclass(obj) and issubclass(obj, PSDirectError)}


@pytest.fixture
def host(ssh_lab: SSHLab) -> Iterator[LabHost]:
    """lab3, with whatever a failing test left of the lab user ended afterwards (by PID)."""
    h = lab_host(ssh_lab, 2)
    yield h
    procs.end_processes(user_pids(h))


def plugin_args(lab: SSHLab, host: LabHost, *extra: str) -> list[str]:
    return ["--hosts", host.url, "--ssh-key", str(lab.key_file), "--ssh-known-hosts",
            str(lab.known_hosts), "-p", "no:cacheprovider", *extra]


def wait_for(predicate: object, timeout: float, what: str) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def marked(host: LabHost, marker: str) -> list[int]:
    return [p for p in user_pids(host) if marker in procs.cmdline(p)]


VANISH_MODULE = """
import subprocess, time, pytest
VANISH = {argv!r}

@pytest.mark.parametrize("i", range(20))
def test_n(target, i):
    if i == 5:
        subprocess.run(VANISH, check=True)
        open({stamp!r}, "w").write(repr(time.time()))
    assert target.run("echo %s", i).stdout == f"{{i}}\\n"
"""


def test_a_host_vanishing_mid_run_costs_one_command_and_one_connect_timeout(
        pytester: pytest.Pytester, ssh_lab: SSHLab, host: LabHost, faults: Faults) -> None:
    stamp, junit = pytester.path / "vanished-at", pytester.path / "vanish.xml"
    pytester.makepyfile(test_vanish=VANISH_MODULE.format(argv=faults.vanish_argv(host),
                                                         stamp=str(stamp)))
    start = time.time()
    result = pytester.runpytest(*plugin_args(ssh_lab, host, "--psdirect-command-timeout", "2",
                                             "--psdirect-connect-timeout", "2",
                                             f"--junitxml={junit}"))
    end = time.time()
    since = end - float(stamp.read_text())
    print(f"vanished host, 20 tests, timeouts 2+2: {end - start:.2f}s in all, "
          f"{since:.2f}s from the vanish to the end")
    # one command timeout + one connect timeout + pytest's own work (14 tests, teardown, JUnit);
    # the per-test bounds below are the exact checks, this one only rules out a second timeout
    assert since <= 2 + 2 + 2.5
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed") == 5, outcomes
    later = {}  # test index -> (seconds, failure or error message), from the JUnit XML
    for case in ET.parse(junit).getroot().iter("testcase"):
        index = int(case.get("name", "").rsplit("-", 1)[1].rstrip("]"))
        problem = case.find("error") if case.find("error") is not None else case.find("failure")
        if index > 5:
            message = "" if problem is None else problem.get("message", "")
            later[index] = (float(case.get("time", "0")), message)
    assert sorted(later) == list(range(6, 20))
    for index, (seconds, message) in later.items():
        assert host.url in message and any(name in message for name in PLUGIN_ERRORS), message
        assert "paramiko" not in message and "SSHException" not in message, message
        # test 6 makes the one reopen attempt (bounded by the connect timeout); then at once
        bound = 2 + 0.5 if index == 6 else 0.5
        assert seconds < bound, f"test {index} of the vanished target took {seconds:.2f}s"


def test_connection_reset_mid_command_is_reported_at_once(ssh_lab: SSHLab, host: LabHost,
                                                          lab_settings: Settings) -> None:
    pool = SessionPool(TransportRegistry(), lab_settings, lambda t, r: None)
    marker = f"sleep 30.{time.monotonic_ns() % 10**6:06d}"
    try:
        session = pool.get(parse_target(host.url))
        outcome: list[BaseException | None] = []

        def command() -> None:
            try:
                session.run(marker, timeout=20)
                outcome.append(None)
            except BaseException as exc:
                outcome.append(exc)

        worker = threading.Thread(target=command)
        worker.start()
        wait_for(lambda: marked(host, marker), 5, "the command to start")
        reset_connections(host)
        cut = time.monotonic()
        worker.join(10)
        took = time.monotonic() - cut
        left, waited = wait_user_pids_gone(host, timeout=3)
        left_marked = [p for p in left if marker in procs.cmdline(p)]
        print(f"ss -K mid-command: reported after {took:.2f}s; command processes left after "
              f"{waited:.2f}s: {len(left_marked)}")
        assert outcome and isinstance(outcome[0], PSDirectError), outcome
        assert host.url in str(outcome[0])
        assert took < 2
        assert left_marked == [], describe(left_marked)
        assert session.run("echo again", timeout=10).stdout == "again\n"  # reopened once
    finally:
        pool.close_all()


def test_executor_killed_idle_is_replaced_and_killed_busy_is_reported_at_once(
        host: LabHost, lab_settings: Settings) -> None:
    pool = SessionPool(TransportRegistry(), lab_settings, lambda t, r: None)
    marker = f"sleep 30.{time.monotonic_ns() % 10**6:06d}"
    try:
        session = pool.get(parse_target(host.url))
        assert session.run("true").rc == 0
        assert kill_executor(host), "no executor process found on the host"
        time.sleep(0.2)
        assert session.run("echo replaced", timeout=10).stdout == "replaced\n"

        errors: list[BaseException] = []
        worker = threading.Thread(target=lambda: _capture(errors, session.run, marker, timeout=20))
        worker.start()
        wait_for(lambda: marked(host, marker), 5, "the command to start")
        killed = kill_executor(host, spare=marker)
        start = time.monotonic()
        worker.join(25)
        took = time.monotonic() - start
        print(f"executor killed mid-command ({len(killed)} processes): reported after {took:.2f}s")
        assert errors and isinstance(errors[0], PSDirectError), errors
        assert took < 2, "a dead executor was noticed only at the timeout"
        wait_for(lambda: not marked(host, marker), 3, "the orphaned command to end")
    finally:
        pool.close_all()


def _capture(errors: list[BaseException], call: object, *args: object, **kwargs: object) -> None:
    assert callable(call)
    try:
        call(*args, **kwargs)
    except BaseException as exc:
        errors.append(exc)


def test_a_blackholed_address_fails_within_the_connect_timeout(faults: Faults) -> None:
    address = faults.blackhole()
    pool = SessionPool(TransportRegistry(), Settings(connect_timeout=1), lambda t, r: None)
    start = time.monotonic()
    with pytest.raises(PSDirectError, match=address):
        pool.get(parse_target(f"ssh://nobody@{address}"))
    took = time.monotonic() - start
    print(f"blackholed address: ConnectFailed after {took:.2f}s (connect timeout 1s)")
    assert took < 1.5
    pool.close_all()


SLEEP_MODULE = """
import os
def test_sleep(target):
    open({pidfile!r}, "w").write(str(os.getpid()))
    target.run({marker!r}, timeout=60)
"""


@pytest.mark.parametrize(("how", "extra"), [
    ("sigint", ()), ("sigkill-worker", ("-n", "1", "--max-worker-restart", "0"))])
def test_interrupted_run_leaves_nothing_on_the_host(ssh_lab: SSHLab, host: LabHost,
                                                    tmp_path: Path, how: str,
                                                    extra: tuple[str, ...]) -> None:
    marker, pidfile = f"sleep 30.{time.monotonic_ns() % 10**6:06d}", tmp_path / "pid"
    (tmp_path / "test_sleep.py").write_text(SLEEP_MODULE.format(pidfile=str(pidfile), marker=marker))
    run = subprocess.Popen([sys.executable, "-m", "pytest", str(tmp_path / "test_sleep.py"),
                            *plugin_args(ssh_lab, host, *extra)], cwd=tmp_path,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: marked(host, marker) and pidfile.exists(), 30, "the remote sleep")
        victim = run.pid if how == "sigint" else int(pidfile.read_text())
        sent = time.monotonic()
        os.kill(victim, signal.SIGINT if how == "sigint" else signal.SIGKILL)
        run.wait(timeout=30)  # a killed worker: the controller reports the crash and exits
        print(f"{how}: pytest exited {run.returncode} after {time.monotonic() - sent:.2f}s")
        left, _ = wait_user_pids_gone(host, timeout=5)
        print(f"{how}: {len(left)} lab-user processes left on the host "
              f"{time.monotonic() - sent:.2f}s after the signal")
        assert left == [], describe(left)
    finally:
        if run.poll() is None:
            run.terminate()
            try:
                run.wait(timeout=30)
            except subprocess.TimeoutExpired:
                run.kill()
                run.wait()


LEFT_BEHIND_MODULE = """
def test_leaves_a_job(target):
    assert target.run("sleep 100.{n} >/dev/null 2>&1 & echo ok", timeout=10).stdout == "ok\\n"
"""


def test_a_background_job_left_by_a_test_ends_with_the_run(
        pytester: pytest.Pytester, ssh_lab: SSHLab, host: LabHost) -> None:
    n = f"{time.monotonic_ns() % 10**6:06d}"
    pytester.makepyfile(test_left=LEFT_BEHIND_MODULE.format(n=n))
    result = pytester.runpytest(*plugin_args(ssh_lab, host))
    result.assert_outcomes(passed=1)
    left, waited = wait_user_pids_gone(host, timeout=3)
    print(f"after a run that left 'sleep 100 &': {len(left)} processes after {waited:.2f}s")
    assert left == [], describe(left)
