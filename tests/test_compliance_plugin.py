"""The compliance plugin as users run it (pytester subprocesses) against the SSH lab: one batch per
module and target, waivers, JUnit properties, JSON/HTML reports merged from xdist workers, the
reasons baseline, and --compliance-mode audit-and-set really remediating."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from pytest_psdirect.lab.sshlab import SSHLab

SUITE = """
import pytest
from pytest_psdirect.compliance import File, SshdSetting, Sysctl, assert_compliant

CHECKS = [SshdSetting("permitrootlogin", "no"), SshdSetting("x11forwarding", "no"),
          SshdSetting("maxauthtries", 4, op="<="), File("/etc/passwd", owner="root", max_mode=0o644),
          Sysctl("kernel.no_such_knob", 1, check_id="no-such-knob")]

@pytest.mark.compliance(impact=0.7, severity="high", tags=["ssh"])
@pytest.mark.parametrize("resource", CHECKS, ids=str)
def test_baseline(target, resource):
    assert_compliant(target.check(resource))

def test_plain(target):
    assert target.run("true").rc == 0

def test_round_trips(target):
    # 5 checks of this module on this target were fetched in one round trip
    assert target.checker.round_trips == 1
"""

WAIVERS = """
- id: sshd[x11forwarding]
  justification: "X11 for the legacy admin tool until CHG-42"
  expiration: 2099-12-31
- id: no-such-knob
  justification: "not on this kernel"
  expiration: 2099-12-31
  run: false
- id: test_plain
  justification: "expired long ago"
  expiration: 2020-01-01
"""


def _hosts(lab: SSHLab, n: int = 2) -> list[str]:
    assert lab.state is not None
    return [h.url for h in lab.state.hosts[:n]]


def _run(pytester: pytest.Pytester, lab: SSHLab, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "--hosts", ",".join(_hosts(lab)), "--ssh-key", str(lab.key_file), "--ssh-known-hosts",
        str(lab.known_hosts), "-p", "no:cacheprovider", "-rfEsxX", *args)


def test_reports_waivers_junit_and_baseline_under_xdist(pytester: pytest.Pytester,
                                                        ssh_lab: SSHLab) -> None:
    pytester.makepyfile(test_suite=SUITE)
    pytester.path.joinpath("waivers.yml").write_text(WAIVERS)
    hardened, weak = _hosts(ssh_lab)
    first = pytester.path / "first.json"
    result = _run(pytester, ssh_lab, "-n", "2", "--waivers", "waivers.yml",
                  f"--compliance-report={first}", "--compliance-html=out.html",
                  "--junitxml=junit.xml")
    # per host: 5 checks + plain + round trips; weak host fails permitrootlogin, maxauthtries
    result.assert_outcomes(passed=5 + 3, failed=2, skipped=2, xfailed=1, xpassed=1)
    result.stdout.fnmatch_lines(["*waiver 'test_plain' expired on 2020-01-01: ignored*"])
    result.stdout.fnmatch_lines([f"*psdirect: compliance report written to {first}*"])

    report = json.loads(first.read_text())
    by_target = {t["target"]: t for t in report["targets"]}
    assert by_target[hardened]["complianceStatus"] == "Compliant"
    assert by_target[weak]["complianceStatus"] == "NonCompliant"
    weak_checks = {c["check"]: c for c in by_target[weak]["checks"]}
    root = weak_checks["test_baseline[sshd[permitrootlogin]]"]
    assert root["complianceStatus"] == "NonCompliant" and root["impact"] == 0.7
    assert root["resources"][0]["reasons"] == [
        {"code": "sshd:sshd:permitrootlogin",
         "phrase": "sshd permitrootlogin is yes, expected no."}]
    assert root["resources"][0]["properties"]["permitrootlogin"] == "yes"
    x11 = weak_checks["test_baseline[sshd[x11forwarding]]"]
    assert x11["complianceStatus"] == "Waived" and x11["waiver"]["id"] == "sshd[x11forwarding]"
    assert x11["resources"][0]["reasons"][0]["code"] == "sshd:sshd:x11forwarding"
    assert weak_checks["test_baseline[no-such-knob]"]["complianceStatus"] == "Waived"
    assert {w["id"] for w in report["waivers"]} == {"sshd[x11forwarding]", "no-such-knob"}
    assert [w["id"] for w in report["expiredWaivers"]] == ["test_plain"]
    assert by_target[weak]["timings"]["checks"] == 7

    cases = {c.get("name"): {p.get("name"): p.get("value") for p in c.iter("property")}
             for c in ET.parse(pytester.path / "junit.xml").iter("testcase")}
    props = cases[f"test_baseline[{weak}-sshd[permitrootlogin]]"]
    assert props["psdirect_target"] == weak and props["compliance_status"] == "NonCompliant"
    assert props["compliance_reasons"] == "sshd:sshd:permitrootlogin"
    waived = cases[f"test_baseline[{weak}-sshd[x11forwarding]]"]
    assert waived["compliance_waiver"] == "sshd[x11forwarding]"

    html = (pytester.path / "out.html").read_text()
    assert "<script" not in html and "http" not in html.replace(hardened, "").replace(weak, "")
    assert "sshd:sshd:permitrootlogin" in html and html.count("<details>") >= 3

    # the next run: maxauthtries is no longer checked -> its reason disappears
    pytester.makepyfile(test_suite=SUITE.replace(
        'SshdSetting("maxauthtries", 4, op="<="), ', "").replace("== 1", "== 1 or True"))
    again = _run(pytester, ssh_lab, f"--reasons-baseline={first}", "--waivers", "waivers.yml",
                 "--compliance-report=second.json")
    again.stdout.fnmatch_lines(["*psdirect: reasons since the baseline*",
                                "*0 reason(s) appeared*", "*1 reason(s) disappeared*",
                                f"*- {weak}  sshd[[]maxauthtries[]]  sshd:sshd:maxauthtries*"])
    second = json.loads((pytester.path / "second.json").read_text())
    assert second["reasonsBaseline"]["disappeared"] == [
        {"target": weak, "resourceId": "sshd[maxauthtries]", "code": "sshd:sshd:maxauthtries"}]


def test_audit_and_set_mode_remediates_on_the_lab(pytester: pytest.Pytester,
                                                  ssh_lab: SSHLab) -> None:
    pytester.makepyfile(test_fix="""
        import pytest
        from pytest_psdirect.compliance import File, assert_compliant

        @pytest.fixture
        def path(target):
            p = target.check_output("printf %s \\"$HOME\\"") + "/fix me.conf"
            target.run("printf 'a=1\\n' > %s; chmod 606 %s", p, p, check=True)
            yield p
            target.run("rm -f %s", p)

        def test_fix(target, path):
            result = target.check(File(path, max_mode=0o600, content="a=2\\n"))
            assert_compliant(result)
            assert result.remediated and result.mode.value == "audit-and-set"
            assert target.check_output("stat -c %%a %s", path) == "600"
            assert target.check_output("cat %s", path) == "a=2"
    """)
    result = _run(pytester, ssh_lab, "--compliance-mode", "audit-and-set",
                  "--compliance-report=fix.json")
    result.assert_outcomes(passed=2)
    report = json.loads((pytester.path / "fix.json").read_text())
    resource = report["targets"][0]["checks"][0]["resources"][0]
    assert resource["remediated"] and resource["mode"] == "audit-and-set"
    assert {r["code"] for r in resource["remediatedReasons"]} == {"file:file:mode",
                                                                  "file:file:content"}


def test_bad_compliance_options_are_usage_errors(pytester: pytest.Pytester) -> None:
    pytester.path.joinpath("w.yml").write_text("- id: x\n  expiration: 2099-01-01\n")
    result = pytester.runpytest_subprocess("--hosts", "local://", "--waivers", "w.yml")
    result.stderr.fnmatch_lines(["*w.yml entry 1: waiver 'x' has no justification*"])
    result = pytester.runpytest_subprocess("--hosts", "local://", "--reasons-baseline", "no.json")
    result.stderr.fnmatch_lines(["*cannot read the reasons baseline no.json*"])
    result = pytester.runpytest_subprocess("--compliance-mode", "fix")
    result.stderr.fnmatch_lines(["*--compliance-mode: invalid choice: 'fix'*"])
