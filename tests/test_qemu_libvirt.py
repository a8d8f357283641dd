"""qemu://NAME?connect=URI against a REAL libvirtd: started by the test (root) in a private mount
namespace (its own /etc/libvirt, /run/libvirt, /var/lib/libvirt; QEMU as root, no virtlogd),
PID recorded and ended; a domain defined from psdirect's guest image. Compared with the peer
tool: ``virsh qemu-agent-command`` by hand."""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from qemu_fixtures import IN_CI, require_qemu

from pytest_psdirect import Settings
from pytest_psdirect.errors import CheckpointNotFound, CommandTimeout, VMNotFound
from pytest_psdirect.hypervisors.qemu.libvirt import LibvirtHost
from pytest_psdirect.lab import procs
from pytest_psdirect.lab.qemu_image import build_image
from pytest_psdirect.targets import parse_target
from pytest_psdirect.transports.qemu import QemuTransport

LIBVIRTD = "/usr/sbin/libvirtd"
QEMU_CONF = ('user = "root"\ngroup = "root"\ndynamic_ownership = 0\nremember_owner = 0\n'
             'security_driver = "none"\ncgroup_controllers = [ ]\nnamespaces = [ ]\n'
             'stdio_handler = "file"\n')
#: libvirtd refuses to start without its built-in QEMU user, which only libvirt-daemon-system
#: creates (with the default network and services): the namespace gets a passwd that has it
EXTRA_USER = "libvirt-qemu:x:64055:64055:Libvirt Qemu:/var/lib/libvirt:/usr/sbin/nologin\n"
PRIVATE = ("mount --bind {d}/etc /etc/libvirt && mount --bind {d}/passwd /etc/passwd && "
           "mount --bind {d}/group /etc/group && for x in /var/lib/libvirt /run/libvirt "
           "/var/cache/libvirt; do mkdir -p $x && mount -t tmpfs tmpfs $x || exit 1; done && "
           "exec {libvirtd} --config {d}/libvirtd.conf")
DOMAIN = """<domain type='qemu'><name>{name}</name><memory unit='MiB'>256</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type><kernel>{kernel}</kernel><initrd>{initrd}</initrd>
<cmdline>console=ttyS0 panic=-1 quiet</cmdline></os><on_reboot>destroy</on_reboot><devices>
<emulator>/usr/bin/qemu-system-x86_64</emulator>
<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{disk}'/>
<target dev='vda' bus='virtio'/></disk><serial type='file'><source path='{console}'/></serial>
<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
<controller type='usb' model='none'/><memballoon model='none'/></devices></domain>"""


@dataclass
class Libvirt:
    uri: str
    domain: str
    pid: int

    @property
    def url(self) -> str:
        return f"qemu://{self.domain}?connect={urllib.parse.quote(self.uri, safe='')}"

    def virsh(self, *argv: str) -> str:
        return subprocess.run(["virsh", "-q", "-c", self.uri, *argv], capture_output=True,
                              text=True, timeout=60, check=True).stdout


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "the libvirt tests start libvirtd as root"
    for tool in (LIBVIRTD, "/usr/bin/virsh", "/usr/bin/unshare"):
        if not os.path.exists(tool):
            return f"{tool} is missing (apt-get install libvirt-daemon libvirt-daemon-driver-qemu " \
                   "libvirt-clients)"
    return None


@pytest.fixture(scope="module")
def libvirt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Libvirt]:
    require_qemu()
    why = _missing()
    if why:
        if IN_CI:
            pytest.fail(f"CI must run the libvirt tests, but {why}", pytrace=False)
        pytest.skip(why)
    d = tmp_path_factory.mktemp("libvirt")
    (d / "etc").mkdir()
    (d / "sock").mkdir()
    (d / "etc" / "qemu.conf").write_text(QEMU_CONF)
    (d / "libvirtd.conf").write_text(f'unix_sock_dir = "{d}/sock"\nunix_sock_rw_perms = "0700"\n'
                                     'auth_unix_rw = "none"\nauth_unix_ro = "none"\n')
    (d / "passwd").write_text(Path("/etc/passwd").read_text() + EXTRA_USER)
    (d / "group").write_text(Path("/etc/group").read_text() + "libvirt-qemu:x:64055:\n")
    log = open(d / "libvirtd.log", "wb")  # noqa: SIM115 - closed at teardown
    daemon = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                               PRIVATE.format(d=d, libvirtd=LIBVIRTD)],
                              stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    lv = Libvirt(f"qemu:///system?socket={d}/sock/libvirt-sock", f"psd-{secrets.token_hex(3)}",
                 daemon.pid)  # unshare and sh exec: this PID becomes libvirtd
    try:
        deadline = time.monotonic() + 30
        while not (d / "sock" / "libvirt-sock").exists():
            assert daemon.poll() is None, (d / "libvirtd.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "libvirtd opened no socket in 30 s"
            time.sleep(0.05)
        image = build_image()
        disk = d / "disk.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                        str(image.base_disk), str(disk)], check=True, timeout=60)
        (d / "domain.xml").write_text(DOMAIN.format(name=lv.domain, kernel=image.kernel,
                                                    initrd=image.initrd, disk=disk,
                                                    console=d / "console.log"))
        lv.virsh("define", str(d / "domain.xml"))
        LibvirtHost(lv.uri, timeout=30).start(lv.domain)
        LibvirtHost(lv.uri, timeout=30).wait_ready(lv.domain, 120, None)
        yield lv
    finally:
        subprocess.run(["virsh", "-q", "-c", lv.uri, "destroy", lv.domain], capture_output=True,
                       timeout=60, check=False)
        subprocess.run(["virsh", "-q", "-c", lv.uri, "undefine", "--snapshots-metadata",
                        lv.domain], capture_output=True, timeout=60, check=False)
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=15)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        log.close()
        leftover = [p for p in procs._all_pids() if f"guest={lv.domain}" in procs.cmdline(p)]
        assert procs.end_processes(leftover) == []  # a QEMU libvirt left: ended by its PID
        shutil.rmtree(d, ignore_errors=True)


def transport(lv: Libvirt) -> QemuTransport:
    t = QemuTransport(parse_target(lv.url), None, Settings(connect_timeout=10))
    t.open()
    return t


def test_run_matches_virsh_qemu_agent_command(libvirt: Libvirt) -> None:
    cmd = "printf 'x\\0y'; echo oops >&2; exit 5"
    request = {"execute": "guest-exec", "arguments": {"path": "/bin/sh", "arg": ["-c", cmd],
                                                      "capture-output": True}}
    pid = json.loads(libvirt.virsh("qemu-agent-command", libvirt.domain,
                                   json.dumps(request)))["return"]["pid"]
    while True:
        status = json.loads(libvirt.virsh("qemu-agent-command", libvirt.domain, json.dumps(
            {"execute": "guest-exec-status", "arguments": {"pid": pid}})))["return"]
        if status["exited"]:
            break
    t = transport(libvirt)
    try:
        ours = t.run(cmd, timeout=30)
    finally:
        t.close()
    assert (ours.rc, ours.stdout_bytes, ours.stderr_bytes) == (
        status["exitcode"], base64.b64decode(status["out-data"]),
        base64.b64decode(status["err-data"])) == (5, b"x\0y", b"oops\n")


def test_files_timeout_and_cleanup_through_libvirt(libvirt: Libvirt, tmp_path: Path) -> None:
    data = os.urandom(200_000)
    (tmp_path / "in").write_bytes(data)
    t = transport(libvirt)
    try:
        t.put(str(tmp_path / "in"), "/data/lv.bin")
        t.get("/data/lv.bin", str(tmp_path / "out"))
        assert (tmp_path / "out").read_bytes() == data
        with pytest.raises(CommandTimeout):
            t.run("sleep 60", timeout=2)
        t.run("sleep 500 >/dev/null 2>&1 &", timeout=20)
    finally:
        t.close()
    t = transport(libvirt)
    try:
        assert t.run("ps -o args | grep -c '^sleep'", timeout=20).stdout == "0\n"
    finally:
        t.close()


def test_lifecycle_through_virsh(libvirt: Libvirt) -> None:
    host = LibvirtHost(libvirt.uri, timeout=60)
    assert host.state(libvirt.domain).state == "Running"
    t = transport(libvirt)
    t.run("echo clean > /data/s; sync", timeout=20)
    t.close()
    host.checkpoint(libvirt.domain, "clean")
    try:
        t = transport(libvirt)
        t.run("echo dirty > /data/s; sync", timeout=20)
        t.close()
        host.restore(libvirt.domain, "clean")
        host.wait_ready(libvirt.domain, 60, None)
        t = transport(libvirt)
        assert t.run("cat /data/s", timeout=20).stdout == "clean\n"
        t.close()
        with pytest.raises(CheckpointNotFound):
            host.restore(libvirt.domain, "nope")
    finally:
        host.remove_checkpoint(libvirt.domain, "clean")
    with pytest.raises(VMNotFound, match="no such domain"):
        host.state("ghost")
    with pytest.raises(VMNotFound):
        QemuTransport(parse_target(f"qemu://ghost?connect={urllib.parse.quote(libvirt.uri)}"),
                      None, Settings(connect_timeout=5)).open()


def test_plugin_vm_name_with_qemu_connect(pytester: pytest.Pytester, libvirt: Libvirt) -> None:
    LibvirtHost(libvirt.uri, timeout=60).checkpoint(libvirt.domain, "base")
    try:
        pytester.makepyfile("""
            import pytest

            def test_1(target, host):
                assert host.file("/data/base.txt").exists
                target.run("touch /data/dirt", check=True)

            @pytest.mark.checkpoint("base")
            def test_2(target):
                assert target.run("test -e /data/dirt").rc == 1
        """)
        result = pytester.runpytest_subprocess("-v", "-p", "no:cacheprovider", "--vm-name",
                                               libvirt.domain, "--hypervisor", "qemu",
                                               "--qemu-connect", libvirt.uri)
        result.assert_outcomes(passed=2)
    finally:
        LibvirtHost(libvirt.uri, timeout=60).remove_checkpoint(libvirt.domain, "base")
