"""example_suites/linux_baseline as users run it: green on the hardened lab host, red exactly
where the weak ones are weak (real sshd in network namespaces), with the reasons in the
compliance report; and on this machine (local://)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_psdirect.lab.sshlab import SSHLab

SUITE = Path(__file__).parent.parent / "example_suites" / "linux_baseline"
CHECKS = 31
WEAK = {"test_sshd[sshd[permitrootlogin]]": "sshd:sshd:permitrootlogin  sshd permitrootlogin "
                                             "is yes, expected no.",
        "test_sshd[sshd[x11forwarding]]": "sshd:sshd:x11forwarding  sshd x11forwarding is yes, "
                                          "expected no.",
        "test_sshd[sshd[maxauthtries]]": "sshd:sshd:maxauthtries  sshd maxauthtries is 6, "
                                         "expected <= 4."}


def test_green_on_the_hardened_host_red_where_the_others_are_weak(pytester: pytest.Pytester,
                                                                   ssh_lab: SSHLab) -> None:
    report = pytester.path / "baseline.json"
    result = pytester.runpytest_subprocess(
        str(SUITE), "--inventory", str(ssh_lab.inventory_file), "-n", "2", "-p",
        "no:cacheprovider", "-rf", f"--compliance-report={report}",
        f"--compliance-html={pytester.path / 'baseline.html'}")
    assert ssh_lab.state is not None
    hardened, *weak = ssh_lab.state.hosts
    result.assert_outcomes(passed=CHECKS * 3 - 3 * len(weak), failed=3 * len(weak))
    for line in result.outlines:
        if line.startswith("FAILED"):
            assert hardened.url not in line, line
    errors = [line for line in result.outlines if line.startswith("E ")]
    for phrase in WEAK.values():
        assert sum(phrase in line for line in errors) == len(weak), phrase

    data = json.loads(report.read_text())
    status = {t["target"]: t for t in data["targets"]}
    assert status[hardened.url]["complianceStatus"] == "Compliant"
    assert status[hardened.url]["counts"]["Compliant"] == CHECKS
    for host in weak:
        target = status[host.url]
        assert target["complianceStatus"] == "NonCompliant"
        failing = {c["check"]: c for c in target["checks"]
                   if c["complianceStatus"] == "NonCompliant"}
        assert set(failing) == set(WEAK)
        for check, line in WEAK.items():
            reason = failing[check]["resources"][0]["reasons"][0]
            assert f"{reason['code']}  {reason['phrase']}" == line
            assert failing[check]["severity"] == "high" and failing[check]["tags"] == ["ssh"]
    html = (pytester.path / "baseline.html").read_text()
    assert all(h.url in html for h in ssh_lab.state.hosts) and "<script" not in html


def test_on_this_machine(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess(str(SUITE), "--hosts", "local://", "-p",
                                           "no:cacheprovider")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) == CHECKS, result.stdout.str()
    result.stdout.fnmatch_lines(["*test_files?file?/etc/shadow??*PASS*"])
