"""A small Linux baseline: account files, sshd hardening, insecure daemons and packages.

Run it against any targets::

    pytest example_suites/linux_baseline --hosts local://
    pytest example_suites/linux_baseline --inventory .lab/inventory.toml -n 2
"""

from __future__ import annotations

import pytest

from pytest_psdirect import TargetSession

INSECURE_DAEMONS = ("telnetd", "in.telnetd", "in.rshd", "in.rlogind", "vsftpd", "tftpd")
INSECURE_PACKAGES = ("telnetd", "rsh-server", "nis", "tftpd-hpa")


def test_shadow_is_private(host):
    shadow = host.file("/etc/shadow")
    assert shadow.exists, "/etc/shadow is missing"
    assert shadow.user == "root", f"/etc/shadow is owned by {shadow.user}, expected root"
    assert shadow.mode & 0o037 == 0, (
        f"/etc/shadow has mode {shadow.mode:o}: group may only read, others nothing")


def test_passwd_is_not_writable_by_others(host):
    passwd = host.file("/etc/passwd")
    assert passwd.user == "root"
    assert passwd.mode & 0o022 == 0, f"/etc/passwd has mode {passwd.mode:o}: writable by others"


@pytest.mark.parametrize(("keyword", "expected"), [
    ("permitrootlogin", "no"),
    ("x11forwarding", "no"),
])
def test_sshd_setting(sshd, keyword, expected):
    actual = sshd.get(keyword, "(sshd default)")
    assert actual == expected, f"sshd {keyword} is {actual!r}, expected {expected!r}"


def test_sshd_max_auth_tries(sshd):
    tries = int(sshd.get("maxauthtries", "6"))
    assert tries <= 4, f"sshd MaxAuthTries is {tries}, expected 4 or less"


def test_no_insecure_daemons_running(host):
    running = [name for name in INSECURE_DAEMONS if host.process.filter(comm=name)]
    assert not running, f"insecure daemons running: {running}"


def test_no_insecure_packages(host):
    installed = [name for name in INSECURE_PACKAGES if host.package(name).is_installed]
    assert not installed, f"insecure packages installed: {installed}"


def test_no_world_writable_files_in_etc(target: TargetSession):
    found = target.run("find /etc -xdev -type f -perm -0002 2>/dev/null").stdout.split()
    assert not found, f"world-writable files in /etc: {found}"
