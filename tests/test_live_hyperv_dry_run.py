"""tests/live/test_live_hyperv.py's lifecycle tests, run against the simulated Hyper-V host (a
dry run of the live tier's set-up: variables, URLs, the plugin's options), and its skip line."""

from __future__ import annotations

from pathlib import Path

import pytest
from hyperv_sim.sim import GUEST_PASSWORD, GUEST_USER, HyperVSim

LIVE = Path(__file__).parent / "live" / "test_live_hyperv.py"


def test_without_variables_one_skip_line_names_them(pytester: pytest.Pytester,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HOST", "VM", "USERNAME", "PASSWORD"):
        monkeypatch.delenv(f"PSDIRECT_LIVE_HYPERV_{name}", raising=False)
    result = pytester.runpytest_subprocess(str(LIVE), "-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED [[]1[]] *: no live Hyper-V VM: set "
                                 "PSDIRECT_LIVE_HYPERV_HOST, PSDIRECT_LIVE_HYPERV_VM, "
                                 "PSDIRECT_LIVE_HYPERV_USERNAME, PSDIRECT_LIVE_HYPERV_PASSWORD*"])


def test_lifecycle_tests_against_the_simulator(pytester: pytest.Pytester, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    sim = HyperVSim(tmp_path / "hv")
    sim.add_vm("lab vm 1")
    sim.answer("lab vm 1", "$env:COMPUTERNAME", "LABVM1")
    (sim.dir / "guests").mkdir(parents=True, exist_ok=True)
    vm_id = sim.vms[0]["id"]
    # the checkpoint the live tier may restore, taken through the simulator's own handler
    from pytest_psdirect import Settings
    from pytest_psdirect.hypervisors.hyperv.lifecycle import HyperVHost
    from pytest_psdirect.hypervisors.hyperv.nested import VMRef
    from pytest_psdirect.targets import parse_target
    from pytest_psdirect.transports import TransportRegistry

    hv = HyperVHost(TransportRegistry().get("pwsh")(parse_target(sim.host_url), None,
                                                    Settings(connect_timeout=10,
                                                             command_timeout=30)), timeout=30)
    hv.checkpoint(VMRef(name="lab vm 1"), "baseline")
    hv.close()
    for name, value in (("HOST", sim.host_url), ("VM", "lab vm 1"), ("USERNAME", GUEST_USER),
                        ("PASSWORD", GUEST_PASSWORD), ("CHECKPOINT", "baseline")):
        monkeypatch.setenv(f"PSDIRECT_LIVE_HYPERV_{name}", value)
    monkeypatch.setenv("CI", "true")
    result = pytester.runpytest_subprocess(
        str(LIVE), "-p", "no:cacheprovider", "-v", "-k",
        "running_and_ready or unknown_checkpoint or plugin_restores")
    result.assert_outcomes(passed=3, deselected=2)
    counts = sim.counts()
    assert counts["restore-vmsnapshot"] == 1 and counts["start-vm"] == 1  # the plugin's restore
    assert sim.vm_state(vm_id)["state"] == "Running"
    assert GUEST_PASSWORD not in result.stdout.str()
