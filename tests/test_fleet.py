"""Fleets on real sshd hosts (24 network namespaces): xdist host affinity, the throttle, the
per-endpoint cap, dead targets, the per-target summary, and ``kill -9`` of a worker."""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import signal
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from fleetlab import AgentSampler, agents, fleet_subnet, slots_held, user_processes, wait_for

from conftest import LAB_USER, require_lab
from pytest_psdirect.lab.sshlab import SSHLab
from pytest_psdirect.plugin.throttle import run_folder
from pytest_psdirect.throttle import Throttle

HOSTS = 24
USER = LAB_USER + "f"  # the fleet lab's own user, next to the 3-host lab's


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHLab]:
    """24 sshd hosts; root may log in to hosts 1 and 2 with the runner key (remote workers).

    sshd refuses key files under a world-writable folder such as /tmp, so root's key goes to
    each host's own /etc/ssh (``/etc/netns/NS/ssh``, removed with the lab)."""
    require_lab()
    workdir = tmp_path_factory.mktemp("fleet")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(workdir / "runner")],
                   check=True)
    lab = SSHLab(workdir, hosts=HOSTS, user=USER, subnet=fleet_subnet(),
                 sshd_extra="PermitRootLogin prohibit-password\n"
                            "AuthorizedKeysFile .ssh/authorized_keys /etc/ssh/keys_%u\n")
    lab.up()
    assert lab.state is not None
    for host in lab.state.hosts[:2]:
        keys = Path("/etc/netns") / host.netns / "ssh" / "keys_root"
        keys.write_text((workdir / "runner.pub").read_text())
        keys.chmod(0o600)
    yield lab
    lab.down()


@pytest.fixture
def uid(fleet: SSHLab) -> int:
    return pwd.getpwnam(fleet.user).pw_uid


def urls(lab: SSHLab) -> list[str]:
    assert lab.state is not None
    return [h.url for h in lab.state.hosts]


SUITE = """
import os, time
def test_a(target):
    assert target.run("true").rc == 0
def test_b(target):
    time.sleep(float(os.environ.get("HOLD", "0")))
    assert target.check_output("echo $PSDIRECT_SESSION") != ""
def test_c(target):
    assert target.run("id -un").stdout.strip() == target.spec.user
"""
OPENED_LOG = """
import os, time
def pytest_psdirect_session_opened(target, session):
    with open(os.environ["OPENED_LOG"], "a") as fh:
        fh.write(f"{target.url} {os.getpid()}\\n")
"""


def run(pytester: pytest.Pytester, *args: str, env: dict[str, str] | None = None,
        timeout: float = 120) -> pytest.RunResult:
    old = dict(os.environ)
    os.environ.update(env or {})
    try:
        return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=timeout)
    finally:
        os.environ.clear()
        os.environ.update(old)


def test_xdist_fleet_one_session_per_target_and_summary(pytester: pytest.Pytester,
                                                        fleet: SSHLab, uid: int) -> None:
    pytester.makeconftest(OPENED_LOG)
    pytester.makepyfile(test_fleet_suite=SUITE)
    log = pytester.path / "opened.log"
    junit = pytester.path / "junit.xml"
    result = run(pytester, "-n", "3", "--inventory", str(fleet.inventory_file), "-v",
                 f"--junitxml={junit}", env={"OPENED_LOG": str(log)})
    result.assert_outcomes(passed=3 * HOSTS)
    opened = [line.split() for line in log.read_text().splitlines()]
    assert sorted(url for url, _ in opened) == sorted(urls(fleet))  # once each, in the whole run
    assert len({pid for _, pid in opened}) == 3  # every worker took targets
    result.stdout.fnmatch_lines([f"*psdirect: targets ({HOSTS})*"])
    for url in urls(fleet):
        result.stdout.fnmatch_lines([f"  {url} *3 passed in *s; slowest test_*"])
    result.stdout.fnmatch_lines(["*psdirect: * done (3 passed); */24 targets done*"])
    root = ET.parse(junit).getroot()
    assert not root.findall(".//properties/property[@name='psdirect_unreachable']")
    assert agents(uid) == []  # every session closed with the run


def test_without_xdist_and_with_xdist_disabled(pytester: pytest.Pytester, fleet: SSHLab) -> None:
    pytester.makepyfile(test_fleet_suite=SUITE)
    hosts = ",".join(urls(fleet)[:4])
    args = ["--hosts", hosts, "--ssh-key", str(fleet.key_file), "--ssh-known-hosts",
            str(fleet.known_hosts)]
    for extra in ([], ["-p", "no:xdist"]):
        result = run(pytester, *args, *extra)
        result.assert_outcomes(passed=12)
        result.stdout.fnmatch_lines(["*psdirect: targets (4)*"])


def test_throttle_caps_open_sessions_across_workers(pytester: pytest.Pytester, fleet: SSHLab,
                                                    uid: int) -> None:
    """3 workers opening ahead would hold up to 6 sessions; --throttle-limit 2 holds them to 2
    (counted as agent processes on the hosts), and the run still passes."""
    pytester.makepyfile(test_fleet_suite=SUITE)
    with AgentSampler(uid) as sampler:
        result = run(pytester, "-n", "3", "--inventory", str(fleet.inventory_file),
                     "--throttle-limit", "2", env={"HOLD": "0.05"})
    result.assert_outcomes(passed=3 * HOSTS)
    assert sampler.samples > 50
    assert sampler.peak == 2, sampler.peak
    with AgentSampler(uid) as sampler:  # the same run without a cap opens more at once
        result = run(pytester, "-n", "3", "--inventory", str(fleet.inventory_file),
                     env={"HOLD": "0.05"})
    result.assert_outcomes(passed=3 * HOSTS)
    assert sampler.peak > 2, sampler.peak


def test_max_sessions_per_endpoint(pytester: pytest.Pytester, fleet: SSHLab, uid: int) -> None:
    """Six targets that are one endpoint (same host, port and user): at most 1 session at once;
    sessions to other endpoints are not held back by it."""
    pytester.makepyfile(test_fleet_suite=SUITE)
    same = [f"{urls(fleet)[0]}?timeout={5 + n}" for n in range(6)]
    hosts = ",".join(same + urls(fleet)[1:7])
    args = ["--hosts", hosts, "--ssh-key", str(fleet.key_file), "--ssh-known-hosts",
            str(fleet.known_hosts), "-n", "3", "--max-sessions-per-endpoint", "1"]
    assert fleet.state is not None
    netns = fleet.state.hosts[0].netns

    inode = os.stat(f"/run/netns/{netns}").st_ino

    def on_first_host() -> int:
        count = 0
        for pid in agents(uid):
            with contextlib.suppress(OSError):
                count += os.stat(f"/proc/{pid}/ns/net").st_ino == inode
        return count

    peak, total = 0, 0
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                            cwd=pytester.path, env={**os.environ, "HOLD": "0.05"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    while proc.poll() is None:
        peak = max(peak, on_first_host())
        total = max(total, len(agents(uid)))
        time.sleep(0.005)
    out = proc.stdout.read() if proc.stdout else ""
    assert proc.returncode == 0, out
    assert "36 passed" in out
    assert peak == 1, peak
    assert total > 1, total


def test_dead_targets_error_at_once_with_one_line(pytester: pytest.Pytester, fleet: SSHLab,
                                                  uid: int) -> None:
    """20 live hosts, one silent address (connect timeout) and one refused port: the run costs
    about one connect timeout, every test of a dead target errors with the same line, the
    summary and JUnit name the dead ones apart from the non-compliant ones."""
    assert fleet.state is not None
    silent = f"{fleet.state.subnet}.250"  # on the bridge, nobody answers ARP: connect stalls
    refused = f"{urls(fleet)[1]}:2222"
    pytester.makepyfile(test_fleet_suite=SUITE + """
def test_d(target):
    assert "lab2" not in target.check_output("hostname; echo lab2"), "not compliant"
""")
    hosts = ",".join([*urls(fleet)[:20], f"ssh://{fleet.user}@{silent}", refused])
    junit = pytester.path / "junit.xml"
    start = time.monotonic()
    result = run(pytester, "--hosts", hosts, "--ssh-key", str(fleet.key_file),
                 "--ssh-known-hosts", str(fleet.known_hosts), "--psdirect-connect-timeout", "3",
                 f"--junitxml={junit}", "-rE")
    took = time.monotonic() - start
    result.assert_outcomes(passed=20 * 3, failed=20, errors=2 * 4)
    assert took < 3 * 2 + 8, took  # one connect timeout (opened at the start), not 4 x 3 s
    for dead in (f"ssh://{fleet.user}@{silent}", refused):
        lines = {re.sub(r"^ERROR \S+ - ", "", line) for line in result.outlines
                 if line.startswith("ERROR") and f"[{dead}]" in line}
        assert len(lines) == 1, lines  # the same one-line reason for all 4 tests
    result.stdout.fnmatch_lines(["*psdirect: unreachable targets (2)*",
                                 f"  ConnectFailed: {refused}: connection refused*",
                                 f"  ConnectFailed: ssh://{fleet.user}@{silent}: no answer*"])
    root = ET.parse(junit).getroot()
    props = {(p.get("name"), p.get("value")) for p in root.iter("property")}
    assert ("psdirect_unreachable", refused) in props
    assert ("psdirect_unreachable", f"ssh://{fleet.user}@{silent}") in props
    assert {v for n, v in props if n == "psdirect_noncompliant"} == set(urls(fleet)[:20])
    assert agents(uid) == []


KILL_SUITE = """
import os, time
from pathlib import Path
def test_hold(target):
    here = Path(os.environ["HOLD_DIR"])
    (here / f"holding.{os.getpid()}").write_text(target.url)
    target.run("setsid sleep 300 >/dev/null 2>&1 &")  # a daemon the session must not leave
    while not (here / "release").exists():
        time.sleep(0.02)
def test_after(target):
    assert target.run("true").rc == 0
"""


def test_kill9_of_a_worker_leaves_no_session_slot_or_process(pytester: pytest.Pytester,
                                                             fleet: SSHLab, uid: int) -> None:
    """Two workers each hold a session (and maybe one opened ahead) in a blocked test that left
    a setsid daemon on its host. ``kill -9`` of one worker: its agents, daemons and throttle
    slots go away while the other worker's stay; after the run nothing of the lab user is left."""
    pytester.makepyfile(test_kill=KILL_SUITE)
    hold = pytester.path / "hold"
    hold.mkdir()
    run_uid = uuid.uuid4().hex
    folder = run_folder(run_uid)
    args = ["-p", "no:cacheprovider", "-n", "2", "--max-worker-restart", "0",
            f"--testrunuid={run_uid}", "--inventory", str(fleet.inventory_file)]
    proc = subprocess.Popen([sys.executable, "-m", "pytest", *args], cwd=pytester.path,
                            env={**os.environ, "HOLD_DIR": str(hold)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: len(list(hold.glob("holding.*"))) == 2, 60, "both workers holding")
        victim, survivor = sorted(int(p.suffix[1:]) for p in hold.glob("holding.*"))
        wait_for(lambda: len(agents(uid)) == slots_held(victim, folder)
                 + slots_held(survivor, folder), 10, "one agent per slot held")
        sleepers = [p for p in user_processes(uid) if "sleep 300" in _cmd(p)]
        assert len(sleepers) == 2
        kept = slots_held(survivor, folder)
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: len(agents(uid)) == kept, 10, "the killed worker's agents ended")
        wait_for(lambda: len([p for p in user_processes(uid) if "sleep 300" in _cmd(p)]) == 1,
                 10, "the killed worker's daemon ended")
        assert Throttle(folder, limit=32).in_use() == kept  # its slots are free again
        (hold / "release").touch()
        out, _ = proc.communicate(timeout=120)
    finally:
        (hold / "release").touch()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "crashed and worker restarting disabled" in out, out
    wait_for(lambda: user_processes(uid) == [], 10, "no process of the lab user left")
    assert not folder.exists()  # the controller removed the run's lock folder


def _cmd(pid: int) -> str:
    from pytest_psdirect.lab.procs import cmdline

    return cmdline(pid)


REMOTE_LOG = """
import os
def pytest_psdirect_session_opened(target, session):  # remote workers get no env: a path
    with open(os.path.join(os.path.dirname(__file__), "opened.log"), "a") as fh:
        fh.write(f"{target.url} {os.stat('/proc/self/ns/net').st_ino} {os.getpid()}\\n")
"""


def test_remote_workers_over_ssh_each_own_their_targets(pytester: pytest.Pytester,
                                                        fleet: SSHLab) -> None:
    """xdist's own remote workers (``--tx ssh=root@RUNNER//python=...//chdir=...``, execnet)
    on two lab hosts, each in its own network namespace: every target's tests run on one of
    them, with one session in the whole run, and the run passes. The namespaces share this
    machine's filesystem, so the venv and the test folder are reached by path (no rsync)."""
    assert fleet.state is not None
    runners, targets = fleet.state.hosts[:2], fleet.state.hosts[2:14]
    config = pytester.path / "ssh_config"
    config.write_text(
        f"Host {' '.join(r.address for r in runners)}\n  User root\n"
        f"  IdentityFile {fleet.workdir / 'runner'}\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {fleet.known_hosts}\n  StrictHostKeyChecking yes\n"
        "  BatchMode yes\n")
    pytester.makeconftest(REMOTE_LOG)
    pytester.makepyfile(test_fleet_suite=SUITE)
    log = pytester.path / "opened.log"
    tx = [f"--tx=ssh={r.address}//ssh_config={config}//python={sys.executable}"
          f"//chdir={pytester.path}" for r in runners]
    hosts = ",".join(t.url for t in targets)
    result = run(pytester, *tx, f"--hosts={hosts}", f"--ssh-key={fleet.key_file}",
                 f"--ssh-known-hosts={fleet.known_hosts}", "--throttle-limit=4")
    result.assert_outcomes(passed=3 * len(targets))
    opened = [line.split() for line in log.read_text().splitlines()]
    assert sorted(url for url, _, _ in opened) == sorted(t.url for t in targets)
    runner_ns = {str(os.stat(f"/run/netns/{r.netns}").st_ino) for r in runners}
    assert {ns for _, ns, _ in opened} == runner_ns  # both runners took targets, nobody else
