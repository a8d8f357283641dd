"""Benchmark: prints figures measured side by side in one run (run as root: it starts the SSH lab).

    python bench/run.py [--rounds 300]

Compares, on real sshd hosts of the lab (PSDIRECT_LAB_SUBNET / PSDIRECT_LAB_USER pick its subnet
and user):
  * target.run("true") median and p99 on an open SSH session and on local://, vs a new exec
    channel per command
  * session open time
  * a 20-check suite written once against testinfra's Host API, run over our session and over
    testinfra's own paramiko backend (same host, same process, interleaved rounds)
  * the same 20 checks as a plain testinfra test file on 3 hosts: whole-process wall time of
    ``pytest`` with our plugin vs ``pytest -p no:psdirect`` (testinfra's plugin, paramiko backend),
    interleaved rounds
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import testinfra

from pytest_psdirect import SessionPool, Settings, TransportRegistry, parse_target
from pytest_psdirect.lab.sshlab import SSHLab

PATHS = ("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/hosts", "/etc/ssh/sshd_config",
         "/bin/sh", "/usr/bin/env", "/tmp")
PACKAGES = ("openssh-server", "iproute2", "procps", "passwd")
COMMANDS = ("true", "uname -s", "id -u", "test -d /etc")
SUITE = """
import pytest
@pytest.mark.parametrize("path", {paths!r})
def test_file(host, path):
    assert host.file(path).exists
@pytest.mark.parametrize("user", ("root", "daemon", "nobody", {user!r}))
def test_user(host, user):
    assert host.user(user).exists
@pytest.mark.parametrize("package", {packages!r})
def test_package(host, package):
    assert host.package(package).is_installed
@pytest.mark.parametrize("cmd", {commands!r})
def test_command(host, cmd):
    assert host.run(cmd).rc == 0
"""


def twenty_checks(host: Any, lab_user: str = "psdtest") -> None:
    """Files, users, packages and commands: 20 checks, as a testinfra suite would write them."""
    for path in PATHS:
        assert host.file(path).exists
    for user in ("root", "daemon", "nobody", lab_user):
        assert host.user(user).exists
    for package in PACKAGES:
        assert host.package(package).is_installed
    for cmd in COMMANDS:
        assert host.run(cmd).rc == 0


def timings_ms(fn: Callable[[], object], rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return times


def median_ms(fn: Callable[[], object], rounds: int) -> float:
    return statistics.median(timings_ms(fn, rounds))


def p99(times: list[float]) -> float:
    return sorted(times)[max(0, round(len(times) * 0.99) - 1)]


def pytest_wall_s(argv: list[str], cwd: Path) -> float:
    """Wall time of one whole ``pytest`` process; it must pass all 60 checks."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *argv],
                          cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    if done.returncode != 0 or "60 passed" not in done.stdout:
        raise SystemExit(f"suite run failed: {argv}\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--process-rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        lab = SSHLab(Path(tmp), hosts=3, user=os.environ.get("PSDIRECT_LAB_USER", "psdtest"),
                     subnet=os.environ.get("PSDIRECT_LAB_SUBNET"))
        hosts = lab.up()
        host = hosts[0]
        try:
            settings = Settings(ssh_key=str(lab.key_file), known_hosts=str(lab.known_hosts))
            pool = SessionPool(TransportRegistry(), settings, lambda t, r: None)
            start = time.perf_counter()
            session = pool.get(parse_target(host.url))
            open_ms = (time.perf_counter() - start) * 1000
            local = pool.get(parse_target("local://"))
            for warm in (session, local):
                warm.run("true")
            ssh_times = timings_ms(lambda: session.run("true"), args.rounds)
            local_times = timings_ms(lambda: local.run("true"), args.rounds)
            ours, ours_local = statistics.median(ssh_times), statistics.median(local_times)
            transport = session._transport
            exec_channel = median_ms(lambda: transport._exec_once("true", 10), min(args.rounds, 100))
            ti = testinfra.get_host(f"paramiko://{host.url[6:]}", ssh_identity_file=str(lab.key_file))
            ti.run("true")  # connect outside the timing
            suite_ours, suite_ti = [], []
            for _ in range(5):  # interleaved, so machine noise hits both alike
                suite_ours.append(median_ms(lambda: twenty_checks(session.testinfra, lab.user), 1))
                suite_ti.append(median_ms(lambda: twenty_checks(ti, lab.user), 1))
            pool.close_all()
            suite_dir = Path(tmp) / "suite"
            suite_dir.mkdir()
            (suite_dir / "test_twenty.py").write_text(SUITE.format(
                paths=PATHS, user=lab.user, packages=PACKAGES, commands=COMMANDS))
            ours_argv = ["--hosts", ",".join(h.url for h in hosts), "--ssh-key", str(lab.key_file),
                         "--ssh-known-hosts", str(lab.known_hosts)]
            ti_argv = ["-p", "no:psdirect", "--hosts",
                       ",".join(f"paramiko://{h.user}@{h.address}" for h in hosts),
                       "--ssh-identity-file", str(lab.key_file)]
            wall_ours, wall_ti = [], []
            for _ in range(args.process_rounds):  # interleaved
                wall_ours.append(pytest_wall_s(ours_argv, suite_dir))
                wall_ti.append(pytest_wall_s(ti_argv, suite_dir))
        finally:
            lab.down()
    so, st = statistics.median(suite_ours), statistics.median(suite_ti)
    print(f"session open (ssh, key auth, executor ready): {open_ms:8.1f} ms")
    print(f"target.run('true') ssh, open session       : {ours:8.3f} ms median, "
          f"{p99(ssh_times):8.3f} ms p99 of {args.rounds}")
    print(f"target.run('true') local://                : {ours_local:8.3f} ms median, "
          f"{p99(local_times):8.3f} ms p99")
    print(f"new exec channel per command (same conn)   : {exec_channel:8.3f} ms median"
          f"  -> executor is {exec_channel / ours:5.1f}x faster")
    print(f"20-check suite over our session            : {so:8.1f} ms median of 5")
    print(f"20-check suite, testinfra paramiko backend : {st:8.1f} ms median of 5"
          f"  -> ours is {st / so:5.1f}x faster")
    wo, wt = statistics.median(wall_ours), statistics.median(wall_ti)
    print(f"pytest process, 20 checks x 3 hosts, ours  : {wo:8.2f} s median of {args.process_rounds}")
    print(f"pytest process, testinfra plugin (paramiko): {wt:8.2f} s median"
          f"  -> wall-time ratio testinfra/ours {wt / wo:5.2f}")


if __name__ == "__main__":
    main()
