"""Features of different helpers together, on real podman containers (``tests/ctr_support.py``):
compliance resources checked on a ``container://`` target (batched and one by one, compared with
``podman exec``), background jobs in a container (concurrent; a cancel ends the process there,
as ``podman exec ID ps`` shows), and ``psdirect shell container://ID`` through a real pty."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from ctr_support import Lab, container_pids, podman_exec
from test_shell_console import spawn_shell, walk_through

from pytest_psdirect import SessionPool, parse_target
from pytest_psdirect.compliance import (
    ComplianceResult,
    File,
    Group,
    MountOption,
    Package,
    Resource,
    Service,
    SshdSetting,
    Sysctl,
    User,
    assert_reason,
)


def _peer(name: str, cmd: str) -> str:
    """What ``podman exec NAME sh -c CMD`` prints (stripped); it must succeed."""
    proc = podman_exec(name, cmd)
    assert proc.returncode == 0, (cmd, proc.stderr)
    return proc.stdout.decode().strip()


def _answers(results: list[ComplianceResult]) -> list[tuple[Any, ...]]:
    return [(r.resource.id, r.compliant, r.reasons, dict(r.properties)) for r in results]


def _checks(with_dpkg: bool) -> list[Resource]:
    checks: list[Resource] = [
        File("/etc/passwd", owner="root", max_mode=0o644), File("/etc/psd no such file"),
        User("root", uid=0), User("nobody-here-x"), Group("root", gid=0),
        Sysctl("net.ipv4.ip_forward", 0), Sysctl("kernel.no_such_knob", 1),
        Service("sleep"), MountOption("/proc", options=("nosuid",))]
    if with_dpkg:
        checks += [Package("python3"), Package("telnetd", installed=False)]
    return checks


@pytest.mark.parametrize("kind", ["debian", "busybox"])
def test_compliance_on_a_container_batched_one_by_one_and_podman_exec_agree(
        ctr_lab: Lab, ctr_pool: SessionPool, kind: str) -> None:
    name = getattr(ctr_lab, kind)
    session = ctr_pool.get(parse_target(ctr_lab.url(name)))
    checks = _checks(with_dpkg=kind == "debian")
    batched = session.checker.check_all(checks)
    assert session.checker.round_trips == 1
    single = [session.check(c) for c in checks]
    assert session.checker.round_trips == 1 + len(checks)
    assert _answers(batched) == _answers(single)
    got = {r.resource.id: r for r in batched}
    # the same questions asked of the container through `podman exec`
    passwd = got["file[/etc/passwd]"].properties
    assert (passwd["mode"], passwd["owner"]) == \
        tuple(_peer(name, "stat -c '%04a %U' /etc/passwd").split())
    assert got["file[/etc/passwd]"].compliant
    assert_reason(got["file[/etc/psd no such file]"], code="file:file:notpresent")
    root = _peer(name, "grep '^root:' /etc/passwd").split(":")
    assert got["user[root]"].properties["uid"] == int(root[2]) == 0
    assert (got["user[root]"].properties["home"], got["user[root]"].properties["shell"]) == \
        (root[5], root[6])
    assert_reason(got["user[nobody-here-x]"], code="user:user:notpresent")
    assert got["group[root]"].properties["gid"] == 0 and got["group[root]"].compliant
    forward = _peer(name, "cat /proc/sys/net/ipv4/ip_forward")
    assert got["sysctl[net.ipv4.ip_forward]"].properties["value"] == forward
    assert got["sysctl[net.ipv4.ip_forward]"].compliant is (forward == "0")
    assert_reason(got["sysctl[kernel.no_such_knob]"], code="sysctl:sysctl:notpresent")
    assert got["service[sleep]"].properties["running"] is True  # the container's `sleep infinity`
    proc_opts = _peer(name, "awk '$2 == \"/proc\" {print $4; exit}' /proc/mounts").split(",")
    assert got["mount[/proc]"].properties["options"] == proc_opts
    if kind == "debian":
        version = _peer(name, "dpkg-query -W -f '${Version}' python3")
        assert got["package[python3]"].properties["version"] == version
        assert got["package[telnetd]"].compliant


def test_jobs_in_a_container_run_at_once_and_cancel_ends_the_process_there(
        ctr_lab: Lab, ctr_pool: SessionPool) -> None:
    name = ctr_lab.debian
    session = ctr_pool.get(parse_target(ctr_lab.url(name)))
    jobs = [session.start("date +%%s.%%N; sleep 1.5; echo job %s; hostname; date +%%s.%%N", str(n),
                          timeout=30) for n in range(3)]
    outs = [job.result(timeout=30).stdout.split() for job in jobs]
    host = _peer(name, "hostname")
    assert [out[1:4] for out in outs] == [["job", str(n), host] for n in range(3)]
    # all three were sleeping at one moment (the clock of the container, whatever the load)
    assert max(float(out[0]) for out in outs) < min(float(out[4]) for out in outs), outs
    slow = session.start("sleep 1007.3; echo never", timeout=60)
    deadline = time.monotonic() + 10
    while not container_pids(name, "sleep 1007.3"):
        assert time.monotonic() < deadline, "the job's process never showed in `podman exec ps`"
        time.sleep(0.1)
    assert session.run("echo still here").stdout == "still here\n"  # next to a running job
    assert slow.cancel() is True
    assert slow.done and slow.cancelled
    deadline = time.monotonic() + 5
    while (left := container_pids(name, "sleep 1007.3")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"cancel left the process running in the container: {left}"


def test_psdirect_shell_on_a_container_through_a_pty(ctr_lab: Lab, tmp_path: Path) -> None:
    name = ctr_lab.debian
    cid = _peer(name, "hostname")  # podman's default hostname: the short container ID
    assert cid in _peer_podman("inspect", "--format", "{{.Id}}", name)
    url = f"container://{cid}"
    child = spawn_shell([url], tmp_path)
    walk_through(child, url, lambda marker: [int(line.split()[0])
                                             for line in container_pids(name, marker)],
                 "/tmp/psd shell's dir")


def _peer_podman(*args: str) -> str:
    proc = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=60,
                          check=True, stdin=subprocess.DEVNULL)
    return proc.stdout.strip()



@pytest.mark.parametrize("kind", ["debian", "busybox"])
def test_sshd_settings_on_a_machine_without_sshd_say_so(ctr_lab: Lab, ctr_pool: SessionPool,
                                                        kind: str) -> None:
    name = getattr(ctr_lab, kind)
    assert podman_exec(name, "command -v sshd || ls /usr/sbin/sshd").returncode != 0  # the peer
    session = ctr_pool.get(parse_target(ctr_lab.url(name)))
    result = session.check(SshdSetting("permitrootlogin", "no"))
    assert not result.compliant
    assert_reason(result, code="sshd:sshd:notinstalled", phrase="sshd isn't installed")
