"""``psdirect doctor``: the troubleshooting list as checks, against the simulated Hyper-V host."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hyperv_sim.sim import GUEST_PASSWORD, GUEST_USER, HyperVSim

from pytest_psdirect.cli import main


@pytest.fixture
def sim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HyperVSim:
    monkeypatch.setenv("VM_USERNAME", GUEST_USER)
    monkeypatch.setenv("VM_PASSWORD", GUEST_PASSWORD)
    sim = HyperVSim(tmp_path / "hv")
    sim.add_vm("web01")
    sim.add_vm("off01", state="Off")
    return sim


def doctor(sim: HyperVSim, vm: str, *extra: str) -> int:
    return main(["doctor", vm, "--hyperv-host", sim.host_url, "--credential-env", "VM", *extra])


def test_a_healthy_vm_passes_every_check(sim: HyperVSim, capsys: pytest.CaptureFixture[str]) -> None:
    assert doctor(sim, "web01") == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out] == [
        "[ OK ] host session", "[ OK ] PowerShell Direct on the host", "[ OK ] VM visible",
        "[ OK ] VM running", "[ OK ] guest heartbeat", "[ OK ] PowerShell Direct session",
        "[ OK ] command in the guest"]
    assert out[-1].endswith(f"{GUEST_USER} on web01")
    assert GUEST_PASSWORD not in "\n".join(out)
    assert sim.counts()["new-pssession"] == 1 and sim.counts()["remove-pssession"] == 1


@pytest.mark.parametrize(("vm", "setup", "last", "fix"), [
    ("off01", None, "[FAIL] VM running: off01 is Off", "Start-VM -Name 'off01'"),
    ("nosuch", None, "[FAIL] VM visible: Hyper-V was unable to find a virtual machine",
     "not a Hyper-V administrator"),
    ("web01", "old", "[FAIL] PowerShell Direct on the host: Windows build 9600", "PowerShell 5+"),
    ("web01", "badpw", "[FAIL] PowerShell Direct session: GuestAuthenticationFailed: The "
     "credential is invalid", ""),
])
def test_each_documented_failure_stops_the_walk_with_its_fix(
        sim: HyperVSim, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        vm: str, setup: str | None, last: str, fix: str) -> None:
    if setup == "old":
        sim.host_too_old = True
        sim.save()
    if setup == "badpw":
        monkeypatch.setenv("VM_PASSWORD", "wrong-" + GUEST_PASSWORD)
    assert doctor(sim, vm) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith(last), lines
    assert fix in lines[-1]
    assert all(line.startswith("[ OK ]") for line in lines[:-1])


def test_doctor_needs_a_vm_and_a_credential(sim: HyperVSim, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["doctor", "ssh://a@b"]) == 2
    assert "is not a VM" in capsys.readouterr().err
    monkeypatch.setenv("CI", "true")
    for var in ("VM_USERNAME", "VM_PASSWORD"):
        monkeypatch.delenv(var)
    assert main(["doctor", "web01", "--hyperv-host", sim.host_url]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] PowerShell Direct session" in out and "credential" in out
    assert os.environ.get("VM_PASSWORD") is None
