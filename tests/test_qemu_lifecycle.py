"""The QEMU hypervisor and the plugin's VM lifecycle on a real QEMU guest: checkpoint/restore
(qcow2 internal snapshots over QMP), overlay provisioning, state, and pytest runs end to end."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from pytest_psdirect import Settings
from pytest_psdirect.errors import CheckpointNotFound, VMNotFound
from pytest_psdirect.hypervisors.base import ProvisionSpec
from pytest_psdirect.hypervisors.qemu.machine import QemuHost, QemuVM, qemu_pid
from pytest_psdirect.lab.qemu import QemuLab
from pytest_psdirect.lab.qemu_image import build_image
from pytest_psdirect.targets import parse_target
from pytest_psdirect.transports.qemu import QemuTransport


def run_in(lab: QemuLab, cmd: str) -> str:
    t = QemuTransport(parse_target(lab.url), None, Settings(connect_timeout=5))
    t.open()
    try:
        return t.run(cmd, timeout=20).stdout
    finally:
        t.close()


def test_checkpoint_restore_brings_back_disk_and_memory(qemu_lab: QemuLab) -> None:
    host, vm = qemu_lab.host, qemu_lab.vm
    run_in(qemu_lab, "echo clean > /data/state.txt; echo clean > /tmp/ram.txt; sync")
    host.checkpoint(vm, "t-clean")
    try:
        run_in(qemu_lab, "echo dirty > /data/state.txt; echo dirty > /tmp/ram.txt; sync")
        began = time.monotonic()
        host.restore(vm, "t-clean")
        host.wait_ready(vm, 30, None)
        restore_seconds = time.monotonic() - began
        assert run_in(qemu_lab, "cat /data/state.txt /tmp/ram.txt") == "clean\nclean\n"
        assert restore_seconds < 10, restore_seconds  # a fresh boot is ~6-9 s on TCG
        with pytest.raises(CheckpointNotFound, match="does not exist"):
            host.restore(vm, "no-such-checkpoint")
        assert host.state(vm).state == "Running"  # a failed load does not leave it paused
    finally:
        host.remove_checkpoint(vm, "t-clean")
    with pytest.raises(CheckpointNotFound):
        host.restore(vm, "t-clean")


def test_state_of_unknown_and_stopped_vms(tmp_path: Path) -> None:
    host = QemuHost(tmp_path, timeout=10)
    with pytest.raises(VMNotFound, match="no QEMU VM 'ghost'"):
        host.state(QemuVM("ghost", tmp_path))
    vm, disk = host.provision(ProvisionSpec(str(build_image().base_disk), "cold"))
    assert host.state(vm).state == "Off" and Path(disk).parent == tmp_path / "cold"
    host.destroy(vm, disk)
    assert not (tmp_path / "cold").exists() and build_image().base_disk.exists()


def plugin_run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-v", "-p", "no:cacheprovider", *args)


def test_plugin_end_to_end_with_checkpoint_markers(pytester: pytest.Pytester,
                                                   qemu_lab: QemuLab) -> None:
    qemu_lab.host.checkpoint(qemu_lab.vm, "clean")
    try:
        pytester.makepyfile("""
            import pytest

            def test_1_run_and_testinfra(target, host):
                assert target.run("cat /data/base.txt").stdout.startswith("made by")
                assert host.file("/data/base.txt").exists
                target.run("echo dirty > /data/mark", check=True)

            @pytest.mark.checkpoint("clean")
            def test_2_clean_again(target):
                assert target.run("cat /data/mark").rc == 1

            @pytest.mark.destructive
            def test_3_destructive(target):
                target.run("echo gone > /data/mark2", check=True)

            def test_4_after_destructive(target):
                assert target.run("test -e /data/mark2").rc == 1
        """)
        result = plugin_run(pytester, "--hosts", qemu_lab.url)
        result.assert_outcomes(passed=4)
    finally:
        qemu_lab.host.remove_checkpoint(qemu_lab.vm, "clean")


def test_vm_name_with_hypervisor_qemu_and_errors(pytester: pytest.Pytester,
                                                 qemu_lab: QemuLab) -> None:
    pytester.makepyfile("""
        def test_x(target):
            assert target.run("hostname").stdout == "psdirect-guest\\n"
    """)
    result = plugin_run(pytester, "--vm-name", qemu_lab.name, "--hypervisor", "qemu",
                        "--qemu-dir", str(qemu_lab.folder))
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*test_x?qemu://{qemu_lab.name}?dir=*PASSED*"])
    began = time.monotonic()
    result = plugin_run(pytester, "--vm-name", "ghost", "--hypervisor", "qemu", "--qemu-dir",
                        str(qemu_lab.folder))
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*VMNotFound: qemu://ghost: no QEMU VM 'ghost' in *(no vm.json)*"])
    assert time.monotonic() - began < 30
    result = plugin_run(pytester, "--vm-name", "x", "--hypervisor", "qemu", "--hyperv-host", "h")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--hyperv-host is for Hyper-V*"])


def test_provisioned_vm_boots_runs_and_is_destroyed(pytester: pytest.Pytester,
                                                    tmp_path: Path) -> None:
    base = build_image().base_disk
    folder = tmp_path / "vms"
    pytester.makepyfile("""
        def test_overlay(target):
            assert target.run("cat /data/base.txt").stdout.startswith("made by")
            target.run("echo mine > /data/own.txt", check=True)
    """)
    result = plugin_run(pytester, "--hypervisor", "qemu", "--qemu-dir", str(folder),
                        "--vm-provision", f"template={base},name=prov1,memory=256M")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*VMs provisioned for this run*", "*qemu://prov1*removed*"])
    assert not (folder / "prov1").exists()
    assert qemu_pid(QemuVM("prov1", folder)) is None and base.exists()


def test_cli_lab_up_vm_prints_the_target_and_down_removes_it(tmp_path: Path) -> None:
    import subprocess

    from pytest_psdirect.cli import main

    workdir = tmp_path / "lab"
    assert main(["lab", "up", "--vm", "--hosts", "0", "--dir", str(workdir)]) == 0
    vm = QemuVM("psdirect-vm", (workdir / "qemu").resolve())
    pid = qemu_pid(vm)
    assert pid is not None
    done = subprocess.run([sys.executable, "-m", "pytest_psdirect.cli", "run",
                           f"qemu://psdirect-vm?dir={vm.root}", "--", "echo", "from-cli"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout) == (0, "from-cli\n"), done.stderr
    assert main(["lab", "down", "--dir", str(workdir)]) == 0
    assert qemu_pid(vm) is None and not (workdir / "qemu").exists()
    assert not Path(f"/proc/{pid}").exists() or "qemu" not in Path(f"/proc/{pid}/cmdline").read_text()


def test_stopped_vm_vm_start_and_ready_timeout(pytester: pytest.Pytester, tmp_path: Path) -> None:
    """An Off VM errors naming --vm-start; --vm-start with a too short --vm-ready-timeout gives a
    bounded VMReadyTimeout (the guest cannot boot in 0.5 s on TCG)."""
    host = QemuHost(tmp_path, timeout=10)
    vm, disk = host.provision(ProvisionSpec(str(build_image().base_disk), "cold"))
    pytester.makepyfile("def test_x(target): pass")
    common = ("--vm-name", "cold", "--hypervisor", "qemu", "--qemu-dir", str(tmp_path))
    try:
        result = plugin_run(pytester, *common)
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines(["*VMNotRunning: *the VM is Off: not started (pass "
                                     "--vm-start*"])
        began = time.monotonic()
        result = plugin_run(pytester, *common, "--vm-start", "--vm-ready-timeout", "0.5")
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines(["*VMReadyTimeout: qemu://cold?dir=*: the VM was not ready after "
                                     "0.5s*--vm-ready-timeout*"])
        assert time.monotonic() - began < 30
        assert host.state(vm).state == "Running"  # started by --vm-start, as Hyper-V's would be
    finally:
        host.destroy(vm, disk)
    assert qemu_pid(vm) is None


def test_keep_vm_keeps_a_failed_tests_checkpoint(pytester: pytest.Pytester,
                                                 qemu_lab: QemuLab) -> None:
    pytester.makepyfile("""
        import pytest

        @pytest.mark.destructive
        def test_breaks(target):
            target.run("echo broken > /data/kept", check=True)
            assert False, "fails on purpose"
    """)
    result = plugin_run(pytester, "--hosts", qemu_lab.url, "--keep-vm")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*VMs kept (--keep-vm)*", "*checkpoint 'psdirect-*' kept (back: "
                                 "QMP snapshot-load, then snapshot-delete)*"])
    name = next(w for w in result.stdout.str().split("'") if w.startswith("psdirect-"))
    assert run_in(qemu_lab, "cat /data/kept") == "broken\n"  # left as the test left it
    qemu_lab.host.restore(qemu_lab.vm, name)
    qemu_lab.host.wait_ready(qemu_lab.vm, 30, None)
    qemu_lab.host.remove_checkpoint(qemu_lab.vm, name)
    assert run_in(qemu_lab, "cat /data/kept 2>&1; true").startswith("cat: can't open")
