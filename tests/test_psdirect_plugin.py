"""``pytest --vm-name ... --hyperv-host ...`` end to end, on the simulated Hyper-V host."""

from __future__ import annotations

from pathlib import Path

import pytest
from hyperv_sim.sim import GUEST_PASSWORD, GUEST_USER, HOSTILE_NAME, HyperVSim


@pytest.fixture
def sim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HyperVSim:
    sim = HyperVSim(tmp_path / "hv")
    sim.add_vm("web01")
    sim.add_vm(HOSTILE_NAME, vm_id="4f2c8d1a-0000-4000-8000-00000000abcd")
    monkeypatch.setenv("VMCRED_USERNAME", GUEST_USER)
    monkeypatch.setenv("VMCRED_PASSWORD", GUEST_PASSWORD)
    monkeypatch.setenv("CI", "true")
    return sim


def test_vm_name_and_id_options(pytester: pytest.Pytester, sim: HyperVSim) -> None:
    pytester.makepyfile("""
        def test_state(target):
            target.run_ps("# guest:set", Value=target.url)
            assert target.run_ps("# guest:get").output == [target.url]

        def test_who(target):
            r = target.run_ps("# guest:whoami")
            print("GUEST", repr(r.output[0]["ComputerName"]))
            assert r.output[0]["UserName"] == "Administrator"
    """)
    result = pytester.runpytest("-s", "-v", "--vm-name", "web01", f"--vm-name={HOSTILE_NAME}",
                                "--vm-id", "4F2C8D1A-0000-4000-8000-00000000ABCD",
                                "--hyperv-host", sim.host_url, "--credential-env", "VMCRED")
    result.assert_outcomes(passed=6)
    out = result.stdout.str()
    assert "GUEST 'web01'" in out and f"GUEST {HOSTILE_NAME!r}" in out
    assert "test_who[vmid://4f2c8d1a-0000-4000-8000-00000000abcd?host=pwsh://" in out
    assert GUEST_PASSWORD not in out
    counts = sim.counts()  # one session per target for the whole run, removed at the end
    assert counts["new-pssession"] == counts["remove-pssession"] == 3
    assert counts["invoke-command"] == 9


def test_vm_without_credential_is_a_clear_error(pytester: pytest.Pytester, sim: HyperVSim) -> None:
    pytester.makepyfile("def test_x(target): target.run_ps('# guest:whoami')")
    result = pytester.runpytest("--vm-name", "web01", "--hyperv-host", sim.host_url)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*vm://web01?host=*a credential is required and none was found*"])
    assert sim.counts()["new-pssession-attempt"] == 0


def test_bad_vm_id_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(target): pass")
    result = pytester.runpytest("--vm-id", "not-a-guid")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*'not-a-guid' is not a VM id (a GUID)*"])
