"""The VM lifecycle in a pytest run, on the simulated Hyper-V host: state checked before a VM's
first test, --vm-start, --vm-ready-timeout, checkpoint/destructive markers, --keep-vm."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hyperv_sim.sim import GUEST_PASSWORD, GUEST_USER, HyperVSim

from pytest_psdirect import Settings
from pytest_psdirect.hypervisors.hyperv.lifecycle import HyperVHost
from pytest_psdirect.hypervisors.hyperv.nested import VMRef
from pytest_psdirect.targets import parse_target
from pytest_psdirect.transports import TransportRegistry

VM_ID = "4f2c8d1a-0000-4000-8000-00000000abcd"


@pytest.fixture
def sim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HyperVSim:
    sim = HyperVSim(tmp_path / "hv")
    sim.add_vm("web01", vm_id=VM_ID)
    sim.add_vm("off01", state="Off", boot_seconds=0.5)
    sim.add_vm("saved01", state="Saved")
    sim.add_vm("slow01", state="Off", boot_seconds=999)
    monkeypatch.setenv("VMCRED_USERNAME", GUEST_USER)
    monkeypatch.setenv("VMCRED_PASSWORD", GUEST_PASSWORD)
    monkeypatch.setenv("CI", "true")
    return sim


@pytest.fixture
def clean_checkpoint(sim: HyperVSim) -> Iterator[Path]:
    """web01's disk holds state.txt = "clean", and a checkpoint "clean" of it."""
    disk = sim.dir / "guests" / VM_ID / "state.txt"
    disk.parent.mkdir(parents=True, exist_ok=True)
    disk.write_text("clean\n")
    transport = TransportRegistry().get("pwsh")(parse_target(sim.host_url), None,
                                               Settings(connect_timeout=10, command_timeout=30))
    hv = HyperVHost(transport, timeout=30)
    hv.checkpoint(VMRef(name="web01"), "clean")
    hv.close()
    yield disk


def run(pytester: pytest.Pytester, sim: HyperVSim, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-v", "--hyperv-host", sim.host_url, "--credential-env", "VMCRED",
                              *args)


def test_a_stopped_vm_errors_at_once_naming_state_and_option(pytester: pytest.Pytester,
                                                             sim: HyperVSim) -> None:
    pytester.makepyfile("""
        def test_a(target): target.run_ps("# guest:whoami")
        def test_b(target): target.run_ps("# guest:whoami")
    """)
    result = run(pytester, sim, "--vm-name", "off01,saved01")
    result.assert_outcomes(errors=4)
    out = result.stdout.str()
    assert out.count("ERROR at setup of test_") == 4 and "VMNotRunning: vm://off01?host=" in out
    assert "the VM is Off: not started (pass --vm-start to start it)" in out
    assert "the VM is Saved: not started (pass --vm-start" in out
    counts = sim.counts()  # asked once per VM, nothing started, no session tried
    assert counts["get-vm"] == 2 and "start-vm" not in counts
    assert counts["new-pssession-attempt"] == 0


def test_vm_start_starts_it_and_waits_until_ready(pytester: pytest.Pytester,
                                                  sim: HyperVSim) -> None:
    pytester.makepyfile("""
        def test_a(target):
            assert target.run_ps("# guest:whoami").output[0]["ComputerName"] == "off01"
    """)
    result = run(pytester, sim, "--vm-name", "off01", "--vm-start")
    result.assert_outcomes(passed=1)
    events = [e["event"] for e in sim.events()]
    assert events.index("start-vm") < events.index("probe") < events.index("new-pssession")
    # the guest booted for 0.5 s: the heartbeat said "No Contact" first, then OK
    heartbeats = [e["heartbeat"] for e in sim.events() if e["event"] == "get-vm"]
    assert heartbeats[0] == "No Contact" and heartbeats[-1] == "OK"


def test_ready_timeout_is_bounded(pytester: pytest.Pytester, sim: HyperVSim) -> None:
    pytester.makepyfile("""
        def test_a(target): pass
        def test_b(target): pass
    """)
    began = time.monotonic()
    result = run(pytester, sim, "--vm-name", "slow01", "--vm-start", "--vm-ready-timeout", "1.5")
    assert time.monotonic() - began < 30
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*VMReadyTimeout: vm://slow01?host=*: the VM was not ready "
                                 "after 1.5s (last seen: Heartbeat integration service No "
                                 "Contact)*--vm-ready-timeout*"])
    assert sim.counts()["start-vm"] == 1


@pytest.mark.parametrize("value", ["0", "nan", "soon"])
def test_bad_ready_timeout_is_a_usage_error(pytester: pytest.Pytester, value: str) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("--vm-ready-timeout", value)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--vm-ready-timeout*{value}*"])


def test_checkpoint_marker_restores_before_the_test(pytester: pytest.Pytester, sim: HyperVSim,
                                                    clean_checkpoint: Path) -> None:
    pytester.makepyfile("""
        import pytest

        def test_1_dirty(target):
            target.run("echo dirty > state.txt", check=True)
            target.run_ps("# guest:set", Value="in memory")

        @pytest.mark.checkpoint("clean")
        def test_2_clean(target):
            assert target.run("cat state.txt").stdout == "clean\\n"
            assert target.run_ps("# guest:get").output == [None]  # a fresh guest session

        def test_3_still_clean(target):
            assert target.run("cat state.txt").stdout == "clean\\n"
    """)
    result = run(pytester, sim, "--vm-name", "web01", "-p", "no:randomly")
    result.assert_outcomes(passed=3)
    counts = sim.counts()
    assert counts["restore-vmsnapshot"] == 1 and counts["start-vm"] == 1
    assert counts["new-pssession"] == 2  # the restore ended the first guest session
    assert clean_checkpoint.read_text() == "clean\n"


def test_module_checkpoint_with_after(pytester: pytest.Pytester, sim: HyperVSim,
                                      clean_checkpoint: Path) -> None:
    pytester.makepyfile(test_mod="""
        import pytest
        pytestmark = pytest.mark.checkpoint("clean", after=True)

        def test_1(target):
            assert target.run("cat state.txt").stdout == "clean\\n"
            target.run("echo one > state.txt", check=True)

        def test_2(target):  # same module: not restored in between
            assert target.run("cat state.txt").stdout == "one\\n"
            target.run("echo two > state.txt", check=True)
    """)
    clean_checkpoint.write_text("dirty before the run\n")
    result = run(pytester, sim, "--vm-name", "web01")
    result.assert_outcomes(passed=2)
    assert sim.counts()["restore-vmsnapshot"] == 2  # before the module and after it
    assert clean_checkpoint.read_text() == "clean\n"


FAILING_DESTRUCTIVE = """
    import pytest

    @pytest.mark.checkpoint(take=True)
    def test_1_breaks_things(target):
        target.run("echo broken > state.txt", check=True)
        assert False, "the change failed"

    def test_2_after(target):
        print("STATE", target.run("cat state.txt").stdout.strip())
"""


def test_take_restores_and_removes_after_a_failing_test(pytester: pytest.Pytester,
                                                        sim: HyperVSim,
                                                        clean_checkpoint: Path) -> None:
    pytester.makepyfile(FAILING_DESTRUCTIVE)
    result = run(pytester, sim, "--vm-name", "web01", "-s")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*STATE clean*"])
    counts = sim.counts()
    assert counts["checkpoint-vm"] == 2 and counts["restore-vmsnapshot"] == 1  # 1: the fixture's
    assert counts["remove-vmsnapshot"] == 1
    assert [c["name"] for c in sim.vm_state(VM_ID)["checkpoints"]] == ["clean"]


def test_destructive_marker_and_keep_vm(pytester: pytest.Pytester, sim: HyperVSim,
                                        clean_checkpoint: Path) -> None:
    pytester.makepyfile(FAILING_DESTRUCTIVE.replace("@pytest.mark.checkpoint(take=True)",
                                                    "@pytest.mark.destructive"))
    result = run(pytester, sim, "--vm-name", "web01", "-s", "--keep-vm")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*STATE broken*", "*psdirect: VMs kept (--keep-vm)*",
                                 "vm://web01?host=*test_1_breaks_things*: checkpoint "
                                 "'psdirect-*' kept (back: Restore-VMSnapshot*"])
    counts = sim.counts()
    assert "restore-vmsnapshot" not in counts and "remove-vmsnapshot" not in counts
    assert len(sim.vm_state(VM_ID)["checkpoints"]) == 2
    assert clean_checkpoint.read_text() == "broken\n"


def test_unknown_checkpoint_errors_the_test(pytester: pytest.Pytester, sim: HyperVSim) -> None:
    pytester.makepyfile("""
        import pytest

        @pytest.mark.checkpoint("golden")
        def test_x(target): pass
    """)
    result = run(pytester, sim, "--vm-name", "web01")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*CheckpointNotFound: vm://web01?host=*: Hyper-V was unable "
                                 "to find a checkpoint with name \"golden\"*Get-VMCheckpoint*"])


def test_markers_are_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.checkpoint(name=None, *, after=False, take=False)*",
                                 "@pytest.mark.destructive*"])


TEMPLATE = "D:\\templates\\ws2022.vhdx"
READ_TEMPLATE = """
    def test_made_from_the_template(target):
        assert target.run("cat provisioned-from.txt").stdout.strip() == {template!r}
        assert {fail!r} == "no"
"""


def test_vm_provision_makes_a_vm_for_the_run_and_removes_it(pytester: pytest.Pytester,
                                                          sim: HyperVSim) -> None:
    sim.add_template(TEMPLATE, boot_seconds=0.2)
    pytester.makepyfile(READ_TEMPLATE.format(template=TEMPLATE, fail="no"))
    result = run(pytester, sim, "--vm-provision", f"template={TEMPLATE},name=ci-01,memory=2G")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_made_from_the_template[[]vm://ci-01?host=*PASSED*",
                                 "*psdirect: VMs provisioned for this run*",
                                 "vm://ci-01?host=*: provisioned VM removed with its disk"])
    events = [e["event"] for e in sim.events()]
    assert events.index("new-vm") < events.index("start-vm") < events.index("new-pssession")
    assert events.index("remove-pssession") < events.index("remove-vm")
    assert list((sim.dir / "vhd").iterdir()) == []


def test_keep_vm_keeps_a_failed_provisioned_vm(pytester: pytest.Pytester, sim: HyperVSim) -> None:
    sim.add_template(TEMPLATE)
    pytester.makepyfile(READ_TEMPLATE.format(template=TEMPLATE, fail="yes"))
    result = run(pytester, sim, "--vm-provision", f"template={TEMPLATE}", "--keep-vm")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["vm://psdirect-ws2022?host=*: a test failed: provisioned VM "
                                 "kept (id *"])
    assert "remove-vm" not in sim.counts() and len(list((sim.dir / "vhd").iterdir())) == 1


def test_bad_provision_spec_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("--vm-provision", "switch=Lab")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--vm-provision*template=PATH*is required*"])


def test_checkpoint_marker_without_name_or_take_is_a_usage_error(pytester: pytest.Pytester,
                                                                 sim: HyperVSim) -> None:
    pytester.makepyfile("""
        import pytest

        @pytest.mark.checkpoint(after=True)
        def test_x(target): pass
    """)
    result = run(pytester, sim, "--vm-name", "web01")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*test_x*@pytest.mark.checkpoint needs a checkpoint name or "
                                 "take=True*"])
    assert sim.counts() == {}


def test_under_xdist_each_vm_is_started_once(pytester: pytest.Pytester, sim: HyperVSim) -> None:
    sim.add_vm("off02", state="Off", boot_seconds=0.2)
    pytester.makepyfile("""
        import pytest

        @pytest.mark.parametrize("n", range(3))
        def test_a(target, n):
            assert target.run_ps("# guest:whoami").output[0]["ComputerName"].startswith("off0")
    """)
    result = run(pytester, sim, "--vm-name", "off01,off02", "--vm-start", "-n", "2")
    result.assert_outcomes(passed=6)
    starts = sorted(e["vm"] for e in sim.events() if e["event"] == "start-vm")
    assert starts == ["off01", "off02"]


def test_ready_timeout_from_the_ini_file(pytester: pytest.Pytester, sim: HyperVSim) -> None:
    pytester.makeini("[pytest]\npsdirect_vm_ready_timeout = 1\n")
    pytester.makepyfile("def test_a(target): pass")
    result = run(pytester, sim, "--vm-name", "slow01", "--vm-start")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*VMReadyTimeout*not ready after 1s*"])
    pytester.makeini("[pytest]\npsdirect_vm_ready_timeout = forever\n")
    result = run(pytester, sim, "--vm-name", "slow01")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*psdirect_vm_ready_timeout (ini)*forever*"])
