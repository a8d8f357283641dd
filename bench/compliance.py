"""Benchmark: a 50-check compliance suite on one SSH lab host, batched vs one round trip per check.

    python bench/compliance.py [--rounds 10]      # as root: it starts a one-host SSH lab

Both ways run the same 50 resources (files, sshd -T settings, sysctls, services, packages, users,
groups, kernel modules, mounts) on the same open session, in interleaved rounds, and must give
the same results. Printed: median wall time of each, the ratio, and the round trips (commands
sent over the session) each needed. PSDIRECT_LAB_SUBNET picks the lab's subnet.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import tempfile
import time
from pathlib import Path

from pytest_psdirect import SessionPool, Settings, TargetSession, TransportRegistry, parse_target
from pytest_psdirect.compliance import (
    Checker,
    ComplianceResult,
    File,
    Group,
    KernelModule,
    MountOption,
    Package,
    Resource,
    Service,
    SshdSetting,
    Sysctl,
    User,
)
from pytest_psdirect.lab.sshlab import SSHLab


def fifty_checks() -> list[Resource]:
    files: list[Resource] = [File(p, owner="root", max_mode=0o644) for p in (
        "/etc/passwd", "/etc/group", "/etc/hosts", "/etc/hostname", "/etc/fstab",
        "/etc/resolv.conf", "/etc/nsswitch.conf", "/etc/login.defs")]
    files += [File("/etc/shadow", owner="root", max_mode=0o640),
              File("/etc/gshadow", owner="root", max_mode=0o640),
              File("/etc/ssh/sshd_config", owner="root", max_mode=0o600),
              File("/etc/login.defs", contains=r"^PASS_MAX_DAYS", check_id="pass-max-days"),
              File("/etc/issue.net", contains="Authorized")]
    sshd = [SshdSetting(k, v) for k, v in (
        ("permitrootlogin", "no"), ("x11forwarding", "no"), ("permitemptypasswords", "no"),
        ("hostbasedauthentication", "no"), ("ignorerhosts", "yes"), ("usepam", "yes"),
        ("allowtcpforwarding", "no"), ("loglevel", "INFO"))]
    sshd += [SshdSetting("maxauthtries", 4, op="<="), SshdSetting("logingracetime", 60, op="<=")]
    sysctls = [Sysctl(k, v) for k, v in (
        ("net.ipv4.ip_forward", 0), ("net.ipv4.conf.all.send_redirects", 0),
        ("net.ipv4.conf.all.accept_redirects", 0), ("net.ipv4.conf.all.accept_source_route", 0),
        ("net.ipv4.icmp_echo_ignore_broadcasts", 1), ("net.ipv4.tcp_syncookies", 1),
        ("kernel.randomize_va_space", 2), ("fs.suid_dumpable", 0))]
    services = [Service("sshd"), Service("telnetd", running=False),
                Service("rsh", running=False)]
    packages = [Package("openssh-server")] + [Package(p, installed=False) for p in (
        "telnetd", "rsh-server", "nis", "tftpd-hpa", "xinetd")]
    accounts: list[Resource] = [User("root", uid=0), User("games", exists=False),
                                Group("root", gid=0), Group("sudo", members=())]
    modules = [KernelModule(m, loaded=False) for m in ("cramfs", "freevxfs", "hfs", "udf")]
    mounts = [MountOption("/proc", options=("nosuid", "nodev", "noexec")),
              MountOption("/dev/shm", options=("nodev", "nosuid"))]
    checks = files + sshd + sysctls + services + packages + accounts + modules + mounts
    assert len(checks) == 50, len(checks)
    return checks


class Counter:
    """Counts the commands sent over a session (each one is one round trip)."""

    def __init__(self, session: TargetSession) -> None:
        self.count = 0
        original = session.run

        def counted(*args: object, **kwargs: object) -> object:
            self.count += 1
            return original(*args, **kwargs)  # type: ignore[arg-type]

        session.run = counted  # type: ignore[method-assign,assignment]


def one_way(session: TargetSession, checks: list[Resource], counter: Counter,
            batched: bool) -> tuple[float, int, list[ComplianceResult]]:
    checker = Checker(session)
    before = counter.count
    start = time.perf_counter()
    results = checker.check_all(checks) if batched else [checker.check(c) for c in checks]
    return time.perf_counter() - start, counter.count - before, results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    rounds = parser.parse_args().rounds
    with tempfile.TemporaryDirectory() as tmp:
        lab = SSHLab(Path(tmp), hosts=1, user=f"psdb{secrets.token_hex(3)}",
                     subnet=os.environ.get("PSDIRECT_LAB_SUBNET"))
        host = lab.up()[0]
        try:
            settings = Settings(ssh_key=str(lab.key_file), known_hosts=str(lab.known_hosts),
                                connect_timeout=5, command_timeout=60)
            pool = SessionPool(TransportRegistry(), settings, lambda t, r: None)
            session = pool.get(parse_target(host.url))
            counter = Counter(session)
            checks = fifty_checks()
            times: dict[bool, list[float]] = {True: [], False: []}
            trips: dict[bool, int] = {}
            answers: dict[bool, list[tuple[str, bool, tuple[str, ...]]]] = {}
            one_way(session, checks, counter, True)  # warm up (sshd -T, page cache)
            for _ in range(rounds):
                for batched in (True, False):
                    took, sent, results = one_way(session, checks, counter, batched)
                    times[batched].append(took)
                    trips[batched] = sent
                    answers[batched] = [(r.resource.id, r.compliant,
                                         tuple(x.code for x in r.reasons)) for r in results]
            assert answers[True] == answers[False], "batched and per-check results differ"
            pool.close_all()
        finally:
            lab.down()
    batched, single = statistics.median(times[True]), statistics.median(times[False])
    failing = sum(1 for _, ok, _ in answers[True] if not ok)
    print(f"50-check compliance suite on {host.url} (sshd in a network namespace), "
          f"{rounds} interleaved rounds, {failing} checks non-compliant, same results both ways")
    print(f"  one round trip per check: median {single * 1000:8.1f} ms, "
          f"{trips[False]} round trips")
    print(f"  batched (one script):     median {batched * 1000:8.1f} ms, "
          f"{trips[True]} round trip(s)")
    print(f"  ratio: batched is {single / batched:.1f}x faster")


if __name__ == "__main__":
    main()
