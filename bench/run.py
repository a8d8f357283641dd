"""Benchmark: prints figures measured side by side in one run (run as root: it starts the SSH lab).

    python bench/run.py [--rounds 300]

Compares, on one real sshd host of the lab:
  * target.run("true") on an open session (our long-lived shell) vs a new exec channel per command
  * session open time
  * a 20-check suite written once against testinfra's Host API, run over our session and over
    testinfra's own paramiko backend (same host, same process, interleaved rounds)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import testinfra

from pytest_psdirect import SessionPool, Settings, TransportRegistry, parse_target
from pytest_psdirect.lab.sshlab import SSHLab


def twenty_checks(host: Any) -> None:
    """Files, users, packages and commands: 20 checks, as a testinfra suite would write them."""
    for path in ("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/hosts", "/etc/ssh/sshd_config",
                 "/bin/sh", "/usr/bin/env", "/tmp"):
        assert host.file(path).exists
    for user in ("root", "daemon", "nobody", "psdtest"):
        assert host.user(user).exists
    for package in ("openssh-server", "iproute2", "procps", "passwd"):
        assert host.package(package).is_installed
    for cmd in ("true", "uname -s", "id -u", "test -d /etc"):
        assert host.run(cmd).rc == 0


def median_ms(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        lab = SSHLab(Path(tmp), hosts=1)
        (host,) = lab.up()
        try:
            settings = Settings(ssh_key=str(lab.key_file), known_hosts=str(lab.known_hosts))
            pool = SessionPool(TransportRegistry(), settings, lambda t, r: None)
            start = time.perf_counter()
            session = pool.get(parse_target(host.url))
            open_ms = (time.perf_counter() - start) * 1000
            local = pool.get(parse_target("local://"))
            ours = median_ms(lambda: session.run("true"), args.rounds)
            ours_local = median_ms(lambda: local.run("true"), args.rounds)
            transport = session._transport
            exec_channel = median_ms(lambda: transport._exec_once("true", 10), min(args.rounds, 100))
            ti = testinfra.get_host(f"paramiko://{host.url[6:]}", ssh_identity_file=str(lab.key_file))
            ti.run("true")  # connect outside the timing
            suite_ours, suite_ti = [], []
            for _ in range(5):  # interleaved, so machine noise hits both alike
                suite_ours.append(median_ms(lambda: twenty_checks(session.testinfra), 1))
                suite_ti.append(median_ms(lambda: twenty_checks(ti), 1))
            pool.close_all()
        finally:
            lab.down()
    so, st = statistics.median(suite_ours), statistics.median(suite_ti)
    print(f"session open (ssh, key auth, executor ready): {open_ms:8.1f} ms")
    print(f"target.run('true') ssh, open session       : {ours:8.3f} ms median of {args.rounds}")
    print(f"target.run('true') local://                : {ours_local:8.3f} ms median")
    print(f"new exec channel per command (same conn)   : {exec_channel:8.3f} ms median"
          f"  -> executor is {exec_channel / ours:5.1f}x faster")
    print(f"20-check suite over our session            : {so:8.1f} ms median of 5")
    print(f"20-check suite, testinfra paramiko backend : {st:8.1f} ms median of 5"
          f"  -> ours is {st / so:5.1f}x faster")


if __name__ == "__main__":
    main()
