"""A Linux baseline (CIS-like): sshd, file permissions, kernel parameters, packages, services,
accounts and kernel modules, as compliance resources that read the effective values
(``sshd -T``, /proc/sys, dpkg/rpm, getent, the process table).

All checks of this module are fetched from a target in one round trip (one remote script).
Run it::

    pytest example_suites/linux_baseline --hosts local://
    pytest example_suites/linux_baseline --inventory .lab/inventory.toml -n 2 \\
        --compliance-report=baseline.json --compliance-html=baseline.html
"""

from __future__ import annotations

import pytest
from uid_zero import OnlyRootHasUidZero

from pytest_psdirect.compliance import (
    File,
    Group,
    KernelModule,
    Package,
    Service,
    SshdSetting,
    Sysctl,
    User,
    assert_compliant,
)

SSHD = [
    SshdSetting("permitrootlogin", "no"),
    SshdSetting("x11forwarding", "no"),
    SshdSetting("maxauthtries", 4, op="<="),
    SshdSetting("permitemptypasswords", "no"),
    SshdSetting("hostbasedauthentication", "no"),
    SshdSetting("ignorerhosts", "yes"),
    SshdSetting("permituserenvironment", "no"),
]
FILES = [
    File("/etc/passwd", owner="root", max_mode=0o644),
    File("/etc/group", owner="root", max_mode=0o644),
    File("/etc/shadow", owner="root", max_mode=0o640),
    File("/etc/gshadow", owner="root", max_mode=0o640),
    File("/etc/ssh/sshd_config", owner="root", max_mode=0o644),
    File("/etc/login.defs", contains=r"^ENCRYPT_METHOD[[:space:]]+(SHA512|YESCRYPT)",
         check_id="password-hashing"),
]
KERNEL = [
    Sysctl("kernel.randomize_va_space", 2),
    Sysctl("fs.suid_dumpable", 0),
    Sysctl("fs.protected_hardlinks", 1),
    Sysctl("net.ipv4.conf.all.accept_source_route", 0),
    Sysctl("net.ipv4.icmp_echo_ignore_broadcasts", 1),
    Sysctl("net.ipv4.tcp_syncookies", 1),
    KernelModule("cramfs", loaded=False),
    KernelModule("freevxfs", loaded=False),
]
SOFTWARE = [
    Package("openssh-server"),
    Package("telnetd", installed=False),
    Package("rsh-server", installed=False),
    Package("nis", installed=False),
    Package("tftpd-hpa", installed=False),
    Service("in.telnetd", running=False),
    Service("vsftpd", running=False),
]
ACCOUNTS = [User("root", uid=0, home="/root"), Group("root", gid=0), OnlyRootHasUidZero()]


@pytest.mark.compliance(impact=0.8, severity="high", tags=["ssh"])
@pytest.mark.parametrize("resource", SSHD, ids=str)
def test_sshd(target, resource):
    assert_compliant(target.check(resource))


@pytest.mark.compliance(impact=0.7, severity="high", tags=["files"])
@pytest.mark.parametrize("resource", FILES, ids=str)
def test_files(target, resource):
    assert_compliant(target.check(resource))


@pytest.mark.compliance(impact=0.5, severity="medium", tags=["kernel"])
@pytest.mark.parametrize("resource", KERNEL, ids=str)
def test_kernel(target, resource):
    assert_compliant(target.check(resource))


@pytest.mark.compliance(impact=0.6, severity="medium", tags=["software"])
@pytest.mark.parametrize("resource", SOFTWARE, ids=str)
def test_software(target, resource):
    assert_compliant(target.check(resource))


@pytest.mark.compliance(impact=0.9, severity="critical", tags=["accounts"])
@pytest.mark.parametrize("resource", ACCOUNTS, ids=str)
def test_accounts(target, resource):
    assert_compliant(target.check(resource))
