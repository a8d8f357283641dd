"""Linux compliance resources against real targets: this machine (local://, root) and the SSH
lab (real sshd in network namespaces, an unprivileged user). Effective values are compared with
what a peer tool reports for the same thing (``sshd -T`` run by root inside the host's
namespace, testinfra, ``sysctl -n``, ``stat``)."""

from __future__ import annotations

import os
import pwd
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_psdirect import SessionPool, Settings, TargetSession, TransportRegistry, parse_target
from pytest_psdirect.compliance import (
    File,
    Group,
    KernelModule,
    MountOption,
    Package,
    Service,
    SshdSetting,
    Sysctl,
    User,
    assert_compliant,
    assert_reason,
)
from pytest_psdirect.lab.sshlab import SSHLab

LAB_SSHD = [("permitrootlogin", "no", "yes"), ("x11forwarding", "no", "yes"),
            ("maxauthtries", "3", "6")]


@pytest.fixture
def pool(lab_settings: Settings) -> Iterator[SessionPool]:
    p = SessionPool(TransportRegistry(), lab_settings, lambda t, r: None)
    yield p
    p.close_all()


@pytest.fixture
def local() -> Iterator[TargetSession]:
    p = SessionPool(TransportRegistry(), Settings(command_timeout=30), lambda t, r: None)
    yield p.get(parse_target("local://"))
    p.close_all()


def _root_sshd_t(netns: str) -> dict[str, str]:
    """The peer: ``sshd -T`` as root inside the lab host's namespace (its /etc/ssh)."""
    out = subprocess.run(["ip", "netns", "exec", netns, "/usr/sbin/sshd", "-T"],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    return {k: v for k, _, v in (line.partition(" ") for line in out.splitlines())}


def test_sshd_effective_values_match_root_sshd_t_on_each_lab_host(
        pool: SessionPool, ssh_lab: SSHLab) -> None:
    assert ssh_lab.state is not None
    for host in ssh_lab.state.hosts[:2]:
        session = pool.get(parse_target(host.url))
        peer = _root_sshd_t(host.netns)
        for keyword, hardened, weak in LAB_SSHD:
            result = session.check(SshdSetting(keyword, hardened))
            # the lab user cannot read the host keys: our probe still gets sshd's own answer
            assert result.properties[keyword] == peer[keyword] == (
                hardened if host.hardened else weak), (host.name, keyword)
            assert result.compliant is host.hardened
        weak = session.check(SshdSetting("maxauthtries", 4, op="<="))
        assert weak.compliant is host.hardened
        if not host.hardened:
            assert_reason(weak, code="sshd:sshd:maxauthtries", phrase="is 6, expected <= 4")
            with pytest.raises(AssertionError, match=r"(?s)sshd:sshd:maxauthtries  sshd "
                                                     r"maxauthtries is 6.*maxauthtries: '6'"):
                assert_compliant(weak)


def _mixed_checks(home: str) -> list:  # type: ignore[type-arg]
    return [File("/etc/passwd", owner="root", max_mode=0o644), File(f"{home}/missing"),
            File("/etc/hostname", contains="."), SshdSetting("permitrootlogin", "no"),
            Sysctl("net.ipv4.ip_forward", 0), Sysctl("kernel.no_such_knob", 1),
            Service("sshd"), Package("openssh-server"), Package("telnetd", installed=False),
            User("root", uid=0), User("nobody-here-x"), Group("root", gid=0),
            KernelModule("cramfs"), MountOption("/proc", options=("nosuid",))]


def test_one_batch_answers_what_one_round_trip_per_check_answers(
        pool: SessionPool, lab_urls: list[str]) -> None:
    session = pool.get(parse_target(lab_urls[1]))
    home = pwd.getpwnam(session.spec.user or "").pw_dir
    checks = _mixed_checks(home)
    batched = session.checker.check_all(checks)
    assert session.checker.round_trips == 1
    single = [session.check(c) for c in checks]
    assert session.checker.round_trips == 1 + len(checks)
    assert [(r.compliant, r.reasons, dict(r.properties)) for r in batched] == \
        [(r.compliant, r.reasons, dict(r.properties)) for r in single]
    status = {r.resource.id: r for r in batched}
    assert status["file[/etc/passwd]"].compliant
    assert_reason(status[f"file[{home}/missing]"], code="file:file:notpresent")
    assert_reason(status["sysctl[kernel.no_such_knob]"], code="sysctl:sysctl:notpresent")
    assert status["service[sshd]"].compliant  # the lab's sshd is in this process table
    assert_reason(status["user[nobody-here-x]"], code="user:user:notpresent")
    assert status["package[telnetd]"].compliant and status["user[root]"].compliant
    # the same questions through testinfra's modules on the same host
    host = session.testinfra
    assert status["package[openssh-server]"].properties["version"] == \
        host.package("openssh-server").version
    assert status["user[root]"].properties["shell"] == host.user("root").shell
    assert status["group[root]"].properties["gid"] == host.group("root").gid
    assert status["file[/etc/passwd]"].properties["mode"] == f"{host.file('/etc/passwd').mode:04o}"


def test_file_properties_match_testinfra_and_audit_and_set_fixes_them_on_the_lab(
        pool: SessionPool, lab_urls: list[str]) -> None:
    session = pool.get(parse_target(lab_urls[0]))
    home = pwd.getpwnam(session.spec.user or "").pw_dir
    path = f"{home}/app dir's.conf"  # a space and a quote: quoting is real
    session.run("printf 'Listen 80\\n' > %s && chmod 666 %s", path, path, check=True)
    try:
        wanted = File(path, max_mode=0o640, contains=r"^Listen [0-9]+$")
        audit = session.check(wanted)
        host = session.testinfra.file(path)
        assert audit.properties["mode"] == f"{host.mode:04o}" == "0666"
        assert audit.properties["owner"] == host.user and audit.properties["contains"]
        assert not audit.compliant and [r.code for r in audit.reasons] == ["file:file:mode"]

        fixed = session.check(wanted, mode="audit-and-set")
        assert fixed.compliant and fixed.remediated and fixed.mode.value == "audit-and-set"
        assert [r.code for r in fixed.before] == ["file:file:mode"]
        assert session.testinfra.file(path).mode == 0o640  # really changed on the host
        assert_compliant(session.check(wanted))           # and a new audit agrees

        content = File(path, content="Listen 8443\n", mode=0o600)
        assert not session.check(content).compliant
        assert session.check(content, mode="audit-and-set").remediated
        assert session.check_output("cat %s", path) == "Listen 8443"
        assert session.testinfra.file(path).mode == 0o600
    finally:
        session.run("rm -f %s", path)


def test_audit_and_set_changes_a_sysctl_and_re_audits(local: TargetSession,
                                                      ssh_lab: SSHLab) -> None:
    """On this machine as root: the lab bridge's own (per-interface) log_martians knob."""
    assert ssh_lab.state is not None
    knob = f"net/ipv4/conf/{ssh_lab.state.bridge}/log_martians"
    peer = ["sysctl", "-n", knob.replace("/", ".")]
    before = subprocess.run(peer, capture_output=True, text=True, check=True).stdout.strip()
    want = "0" if before == "1" else "1"
    try:
        resource = Sysctl(knob, want)
        audit = local.check(resource)
        assert audit.properties["value"] == before and not audit.compliant
        assert_reason(audit, code="sysctl:sysctl:value", phrase=f"is {before}, expected {want}")
        result = local.check(resource, mode="audit-and-set")
        assert result.compliant and result.remediated
        assert subprocess.run(peer, capture_output=True, text=True).stdout.strip() == want
    finally:
        Path(f"/proc/sys/{knob}").write_text(before + "\n")


def test_a_fix_without_the_rights_is_a_clear_error(pool: SessionPool,
                                                   lab_urls: list[str]) -> None:
    session = pool.get(parse_target(lab_urls[1]))
    value = session.check(Sysctl("net.ipv4.ip_forward", 1)).properties["value"]
    with pytest.raises(Exception, match=r"remediation failed: sysctl\[net.ipv4.ip_forward\]: "
                                        r"exit \d+: .*(Permission denied|Read-only)"):
        session.check(Sysctl("net.ipv4.ip_forward", 0 if value == "1" else 1),
                      mode="audit-and-set")


def test_local_root_view(local: TargetSession, tmp_path: Path) -> None:
    """As root on this machine: shadow, accounts, mounts as stat/getent/findmnt see them."""
    shadow = local.check(File("/etc/shadow", owner="root", max_mode=0o640))
    st = os.stat("/etc/shadow")
    assert shadow.properties["mode"] == f"{st.st_mode & 0o7777:04o}"
    assert shadow.compliant == (st.st_mode & 0o137 == 0 and st.st_uid == 0)
    root = local.check(User("root", uid=0, home="/root"))
    assert root.compliant and root.properties["shell"] == pwd.getpwnam("root").pw_shell
    hostile = tmp_path / "a $(touch PWNED) `touch PWNED2`; b'c"
    hostile.write_text("x=1\n")
    hostile.chmod(0o600)
    result = local.check(File(str(hostile), mode=0o600, contains="^x=1$"))
    assert result.compliant and result.properties["exists"], result.reasons
    assert not list(tmp_path.glob("PWNED*")) and not list(Path.cwd().glob("PWNED*"))
    spaced = tmp_path / "mnt point"
    spaced.mkdir()
    result = local.check(MountOption(str(spaced), options=("nodev",)))
    assert_reason(result, code="mount:mount:notmounted")
