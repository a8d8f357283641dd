"""VM lifecycle (HyperVHost over the simulated Hyper-V host): state, start, stop, readiness,
checkpoints; the documented no-op warnings and "unable to find" errors; restores proven by what
the guest's disk holds afterwards."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hyperv_sim.lifecycle import ALREADY
from hyperv_sim.sim import GUEST_PASSWORD, GUEST_USER, HOSTILE_NAME, HyperVSim

from pytest_psdirect import Settings
from pytest_psdirect.credentials.secret import Credential, Secret
from pytest_psdirect.errors import (
    CheckpointNotFound,
    GuestAuthenticationFailed,
    VMLifecycleError,
    VMNotFound,
    VMNotRunning,
    VMReadyTimeout,
)
from pytest_psdirect.hypervisors.base import Hypervisor, VMStatus, parse_provision
from pytest_psdirect.hypervisors.hyperv.lifecycle import HyperVHost
from pytest_psdirect.hypervisors.hyperv.nested import VMRef
from pytest_psdirect.powershell.command import build_invocation
from pytest_psdirect.targets import parse_target
from pytest_psdirect.transports import TransportRegistry

GOOD = Credential(GUEST_USER, Secret(GUEST_PASSWORD))
WEB = VMRef(name="web01")
VM_ID = "4f2c8d1a-0000-4000-8000-00000000abcd"


@pytest.fixture
def sim(tmp_path: Path) -> HyperVSim:
    sim = HyperVSim(tmp_path / "hv")
    sim.add_vm("web01", vm_id=VM_ID)
    sim.add_vm("off01", state="Off", boot_seconds=0.5)
    sim.add_vm("slow01", state="Off", boot_seconds=999)
    return sim


@pytest.fixture
def hv(sim: HyperVSim) -> Iterator[HyperVHost]:
    settings = Settings(connect_timeout=10, command_timeout=30)
    host = parse_target(sim.host_url)
    transport = TransportRegistry().get("pwsh")(host, None, settings)
    hv = HyperVHost(transport, timeout=30, poll=0.2)
    yield hv
    hv.close()


def test_hyperv_host_is_a_hypervisor(hv: HyperVHost) -> None:
    def accepts(h: Hypervisor[VMRef]) -> Hypervisor[VMRef]:
        return h

    assert accepts(hv) is hv  # mypy checks the Protocol; here: it is the same object


def test_state_by_name_by_id_and_unknown(hv: HyperVHost) -> None:
    assert hv.state(WEB) == VMStatus("Running", "OK")
    assert hv.state(VMRef(id=VM_ID.upper())) == VMStatus("Running", "OK")
    assert hv.state(VMRef(name="off01")) == VMStatus("Off", "No Contact")
    with pytest.raises(VMNotFound, match='unable to find a virtual machine with name "nope"'):
        hv.state(VMRef(name="nope"))


def test_hostile_name_reaches_get_vm_as_data(sim: HyperVSim, hv: HyperVHost) -> None:
    sim.add_vm(HOSTILE_NAME, state="Saved")
    assert hv.state(VMRef(name=HOSTILE_NAME)).state == "Saved"
    assert [e["vm"] for e in sim.events() if e["event"] == "get-vm"] == [HOSTILE_NAME]


def test_start_on_a_running_vm_is_a_warned_no_op(sim: HyperVSim, hv: HyperVHost) -> None:
    before = sim.vm_state(VM_ID)["generation"]
    result = hv._call("vm-start", WEB)  # the raw answer, to see the warning stream
    assert result.warning == [ALREADY] and not result.errors
    assert sim.vm_state(VM_ID)["generation"] == before


def test_start_then_ready_then_stop(sim: HyperVSim, hv: HyperVHost) -> None:
    off = VMRef(name="off01")
    hv.start(off)
    waited = hv.wait_ready(off, 10, GOOD)
    assert 0.3 < waited < 10  # the guest boots for 0.5 s: heartbeat "No Contact" until then
    assert hv.state(off) == VMStatus("Running", "OK")
    assert sim.counts()["probe"] >= 1
    hv.stop(off, force=True)
    assert hv.state(off).state == "Off"
    assert [e["turn_off"] for e in sim.events() if e["event"] == "stop-vm"] == [True]


def test_wait_ready_is_bounded_and_says_what_it_saw(hv: HyperVHost) -> None:
    slow = VMRef(name="slow01")
    hv.start(slow)
    began = time.monotonic()
    with pytest.raises(VMReadyTimeout, match=r"not ready after 1.5s \(last seen: Heartbeat "
                                             r"integration service No Contact\)") as info:
        hv.wait_ready(slow, 1.5, GOOD)
    assert 1.4 < time.monotonic() - began < 6
    assert "--vm-ready-timeout" in str(info.value)


def test_wait_ready_on_a_stopped_vm_fails_at_once(hv: HyperVHost) -> None:
    with pytest.raises(VMNotRunning, match="the VM is Off"):
        hv.wait_ready(VMRef(name="off01"), 60, GOOD)


def test_probe_with_a_bad_password_is_not_retried(hv: HyperVHost) -> None:
    began = time.monotonic()
    with pytest.raises(GuestAuthenticationFailed, match="The credential is invalid"):
        hv.wait_ready(WEB, 60, Credential(GUEST_USER, Secret("wrong-0815")))
    assert time.monotonic() - began < 10


def test_checkpoint_restore_puts_the_guest_disk_back(sim: HyperVSim, hv: HyperVHost) -> None:
    disk = sim.dir / "guests" / VM_ID / "state.txt"
    disk.parent.mkdir(parents=True, exist_ok=True)
    disk.write_text("clean\n")
    hv.checkpoint(WEB, "clean")
    disk.write_text("dirty\n")
    (disk.parent / "new.txt").write_text("made after the checkpoint")
    hv.restore(WEB, "clean")
    assert disk.read_text() == "clean\n" and not (disk.parent / "new.txt").exists()
    assert hv.state(WEB).state == "Off"  # a production checkpoint: the VM is left off
    hv.start(WEB)
    assert hv.wait_ready(WEB, 10, GOOD) < 10
    hv.remove_checkpoint(WEB, "clean")
    assert sim.vm_state(VM_ID)["checkpoints"] == []


def test_standard_checkpoint_of_a_running_vm_restores_to_saved(sim: HyperVSim,
                                                               hv: HyperVHost) -> None:
    sim.add_vm("std01", checkpoint_type="Standard")
    std = VMRef(name="std01")
    hv.checkpoint(std, "before")
    hv.restore(std, "before")
    assert hv.state(std).state == "Saved"


def test_unknown_checkpoint_is_hyper_vs_error(hv: HyperVHost) -> None:
    with pytest.raises(CheckpointNotFound, match='unable to find a checkpoint with name "gone"') \
            as info:
        hv.restore(WEB, "gone")
    assert "Get-VMCheckpoint -VMName 'web01'" in str(info.value)
    with pytest.raises(CheckpointNotFound):
        hv.remove_checkpoint(WEB, "gone")


def test_the_simulated_host_refuses_other_scripts(sim: HyperVSim, hv: HyperVHost) -> None:
    hv.state(WEB)  # opens the host session
    for script in ("Get-VM | Stop-VM -TurnOff -Force", "# psrp-test:echo"):
        result = hv.host.run_ps(build_invocation(script, (), {}), timeout=10)
        assert result.errors, script
        assert result.errors[0].fully_qualified_error_id in ("CommandNotFoundException",
                                                             "SimRefused")
    assert hv.state(WEB).state == "Running" and "stop-vm" not in sim.counts()


TEMPLATE = "D:\\templates\\ws2022 core.vhdx"


def test_provision_from_a_template_then_destroy(sim: HyperVSim, hv: HyperVHost) -> None:
    sim.add_template(TEMPLATE, boot_seconds=0.2)
    spec = parse_provision(f"template={TEMPLATE},switch=Lab,memory=4G")
    assert spec.name == "psdirect-ws2022 core"
    vm, disk = hv.provision(spec)
    assert vm.name == spec.name and vm.id and Path(disk).exists()
    assert hv.state(vm) == VMStatus("Off", "No Contact")
    hv.start(vm)
    assert hv.wait_ready(vm, 10, GOOD) < 10
    new_vm = next(e for e in sim.events() if e["event"] == "new-vm")
    assert (new_vm["memory"], new_vm["switch"], new_vm["template"]) == (4 * 2**30, "Lab", TEMPLATE)
    hv.destroy(vm, disk)
    assert not Path(disk).exists()
    with pytest.raises(VMNotFound):
        hv.state(vm)


def test_provision_refuses_a_name_in_use_and_an_unknown_template(sim: HyperVSim,
                                                                 hv: HyperVHost) -> None:
    sim.add_template(TEMPLATE)
    with pytest.raises(VMLifecycleError, match="a VM named 'web01' already exists"):
        hv.provision(parse_provision(f"template={TEMPLATE},name=web01"))
    with pytest.raises(VMLifecycleError, match="cannot find the file specified"):
        hv.provision(parse_provision("template=D:\\nope.vhdx"))
    assert "new-vm" not in sim.counts()
