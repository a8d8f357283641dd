"""example_suites/hyperv_gate as a user runs it (``--vm-name ... --hyperv-host ...
--credential-env VM``), against the simulated Hyper-V host: its guest emulation answers each
check's script (keyed by the script's ``# gate:NAME`` comment) as a healthy and a weak Windows
Server would, and the gate passes the one and fails the other where it is weak."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from hyperv_sim.sim import GUEST_PASSWORD, GUEST_USER, HyperVSim

SUITE = Path(__file__).parent.parent / "example_suites" / "hyperv_gate"
SERVICES = ("EventLog", "WinRM", "W32Time", "Dnscache", "LanmanServer", "vmicheartbeat")


def answers(*, weak: bool) -> dict[str, list[Any]]:
    return {
        "# gate:os": [{"Caption": "Microsoft Windows Server 2022 Datacenter", "Build": 20348,
                       "ProductType": 3}],
        "# gate:services": [{"Name": n, "Status": "Running", "StartType": "Automatic"}
                            for n in SERVICES],
        "# gate:firewall": [{"Name": p, "Enabled": not (weak and p == "Public"),
                             "DefaultInboundAction": "NotConfigured"}
                            for p in ("Domain", "Private", "Public")],
        "# gate:pending-reboot": [{"ComponentServicing": False, "WindowsUpdate": weak,
                                   "FileRenames": False}],
        "# gate:wuauserv": [{"Status": "Stopped", "StartType": "Manual"}],
        "# gate:time": [{"Source": "Local CMOS Clock" if weak else "VM IC Time Synchronization "
                                                                   "Provider", "W32Time": "Running"}],
        "# gate:disk": [{"Drive": "C:", "Free": 40.0 * 2**30, "Size": 127.0 * 2**30}],
        "# gate:smb1": [{"SMB1": False}],
        "# gate:rdp-nla": [{"UserAuthentication": 1}],
        "# gate:defender": [{"RealTime": True, "SignatureAgeDays": 1}],
        "# gate:iis": [{"Installed": not weak, "W3SVC": "Running" if not weak else "",
                        "Sites": [] if weak else [{"Name": "Default Web Site", "State": "Started"}]}],
    }


@pytest.fixture
def sim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HyperVSim:
    sim = HyperVSim(tmp_path / "hv")
    for name, weak in (("web01", False), ("app01", True)):
        sim.add_vm(name, state="Off" if weak else "Running", boot_seconds=0.3)
        for fragment, value in answers(weak=weak).items():
            sim.answer(name, fragment, *value)
    monkeypatch.setenv("VM_USERNAME", GUEST_USER)
    monkeypatch.setenv("VM_PASSWORD", GUEST_PASSWORD)
    monkeypatch.setenv("CI", "true")
    return sim


def test_the_gate_passes_a_healthy_vm_and_names_what_is_weak(pytester: pytest.Pytester,
                                                            sim: HyperVSim) -> None:
    result = pytester.runpytest_subprocess(
        str(SUITE), "--vm-name", "web01,app01", "--hyperv-host", sim.host_url,
        "--credential-env", "VM", "--vm-start", "-p", "no:cacheprovider", "-rfs")
    result.assert_outcomes(passed=11 + 7, failed=3, skipped=1)
    for line in result.outlines:
        if line.startswith("FAILED"):
            assert "vm://app01" in line, line
    result.stdout.fnmatch_lines([
        "*AssertionError: the firewall is off in profile(s) [[]'Public'[]]*",
        "*AssertionError: a reboot is pending (WindowsUpdate): reboot before the gate*",
        "*AssertionError: time source is 'Local CMOS Clock'*",
    ], consecutive=False)
    result.stdout.fnmatch_lines(["SKIPPED*IIS is not installed*"], consecutive=False)
    counts = sim.counts()
    assert counts["start-vm"] == 1  # app01 was off: --vm-start started it
    assert counts["new-pssession"] == 2 and counts["invoke-command"] == 22
    assert GUEST_PASSWORD not in result.stdout.str()


def gate_scripts() -> dict[str, str]:
    """Every ``# gate:NAME`` script of the suite, as PowerShell receives it."""
    tree = ast.parse((SUITE / "test_gate.py").read_text())
    return {node.value.split("\n", 1)[0]: node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and node.value.startswith("# gate:")}


def test_every_gate_script_has_a_simulated_answer_and_parses_as_powershell() -> None:
    scripts = gate_scripts()
    assert sorted(scripts) == sorted(answers(weak=False))
    tree_sitter = pytest.importorskip("tree_sitter")
    grammar = pytest.importorskip("tree_sitter_powershell")
    parser = tree_sitter.Parser(tree_sitter.Language(grammar.language()))
    for name, script in scripts.items():
        assert not parser.parse(script.encode()).root_node.has_error, name
