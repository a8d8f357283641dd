"""The Machine Configuration contract (Reasons), batch framing through a real sh, waivers."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest

from pytest_psdirect.compliance import ComplianceResult, File, Mode, Reason, assert_compliant, assert_reason
from pytest_psdirect.compliance.batch import build_script, parse_output
from pytest_psdirect.compliance.waivers import load_waivers, split_expired
from pytest_psdirect.errors import ComplianceError


@pytest.mark.parametrize(("code", "rule"), [
    ("registry:registry", "three colon-separated parts (found 2)"),
    ("a:a:b:c", "three colon-separated parts (found 4)"),
    ("file:sysctl:mode", "the resource name is repeated"),
    ("file:file:not present", "no spaces"),
    ("file::x", "no empty part"),
    ("", "no spaces (and not empty)"),
])
def test_a_malformed_code_names_the_rule_it_breaks(code: str, rule: str) -> None:
    with pytest.raises(ComplianceError, match="breaks the rule") as info:
        Reason(code, "phrase")
    assert rule in str(info.value) and repr(code) in str(info.value)
    assert "registry:registry:keynotpresent" in str(info.value)  # the hint shows a good one


def test_reasons_from_dsc_are_validated() -> None:
    good = Reason.from_dsc({"Code": "registry:registry:keynotpresent",
                            "Phrase": r"The registry key HKLM:\SOFTWARE\X isn't present"})
    assert (good.resource, good.identifier) == ("registry", "keynotpresent")
    with pytest.raises(ComplianceError, match="must have Code and Phrase"):
        Reason.from_dsc({"code": "a:a:b"})
    with pytest.raises(ComplianceError, match="Phrase must be a string"):
        Reason.from_dsc({"Code": "a:a:b", "Phrase": 3})
    assert Mode.parse("AUDIT_AND_SET") is Mode.AUDIT_AND_SET
    with pytest.raises(ComplianceError, match="unknown compliance mode 'fix'"):
        Mode.parse("fix")


def test_assert_helpers_list_code_phrase_lines_and_the_property_diff() -> None:
    resource = File("/etc/shadow", owner="root", max_mode=0o640)
    reasons = (resource.reason("mode", "/etc/shadow has mode 0644, expected at most 0640."),)
    result = ComplianceResult(resource, False, reasons, {"exists": True, "mode": "0644",
                                                         "owner": "root"}, target="local://")
    with pytest.raises(AssertionError) as info:
        assert_compliant(result)
    text = str(info.value)
    assert text.splitlines()[:2] == [
        "local://: file[/etc/shadow] is NonCompliant",
        "  file:file:mode  /etc/shadow has mode 0644, expected at most 0640."]
    assert "    mode: '0644', expected 'at most 0640'" in text
    assert "owner" not in text.split("properties")[1]  # equal properties are not listed
    assert_reason(result, code="file:file:mode", phrase="0644")
    with pytest.raises(AssertionError, match="expected reason file:file:owner"):
        assert_reason(result, code="file:file:owner")


HOSTILE = [
    "printf 'plain\\n'",
    "printf 'no newline'; printf 'err' >&2; exit 4",
    # a fragment that prints what looks like the next frame's header, binary and NULs
    "printf 'NONCE 1 0 3 0\\nabc\\n\\000\\377'; exit 0",
    "exit 7",  # exit leaves only its own subshell
    "cat /dev/urandom | head -c 70000 >/dev/null; seq 1 20000",
    "trap - EXIT; __psd_d=/nonexistent; echo tried",  # cannot reach the batch's variables
]


def test_frames_stay_apart_whatever_a_fragment_prints() -> None:
    script, nonce = build_script(HOSTILE, nonce="NONCE")
    out = subprocess.run(["sh", "-c", script], capture_output=True, timeout=30, check=True).stdout
    frames = parse_output(out, nonce, len(HOSTILE))
    assert [(f.rc, f.stdout, f.stderr) for f in frames[:4]] == [
        (0, b"plain\n", b""), (4, b"no newline", b"err"),
        (0, b"NONCE 1 0 3 0\nabc\n\x00\xff", b""), (7, b"", b"")]
    assert frames[4].stdout.splitlines()[-1] == b"20000" and frames[5].stdout == b"tried\n"
    with pytest.raises(ComplianceError, match="broke at check 6 of 6"):
        parse_output(out[:-3], nonce, len(HOSTILE), target="local://")  # cut short
    with pytest.raises(ComplianceError, match="broke at check 1 of 7"):
        parse_output(out, nonce, len(HOSTILE) + 1, target="local://")


def test_waivers_file(tmp_path: Path) -> None:
    path = tmp_path / "waivers.yml"
    path.write_text("- id: sshd[permitrootlogin]\n  justification: bastion pending\n"
                    "  expiration: 2099-01-01\n"
                    "- id: old\n  justification: gone\n  expiration: 2020-01-01\n  run: false\n")
    active, expired = split_expired(load_waivers(path), today=dt.date(2026, 11, 24))
    assert list(active) == ["sshd[permitrootlogin]"] and active["sshd[permitrootlogin]"].run
    assert [w.id for w in expired] == ["old"]
    path.write_text("- id: x\n  expiration: soon\n  justification: y\n")
    with pytest.raises(ComplianceError, match="expiration 'soon' is not a date"):
        load_waivers(path)
    path.write_text("- id: x\n")
    with pytest.raises(ComplianceError, match="waiver 'x' has no justification"):
        load_waivers(path)
    path.write_text("- id: x\n  justification: y\n")
    with pytest.raises(ComplianceError, match="waiver 'x' has no expiration"):
        load_waivers(path)
    toml = tmp_path / "w.toml"
    toml.write_text('[[waiver]]\nid = "a"\njustification = "b"\nexpiration = 2099-01-01\n')
    assert load_waivers(toml)[0].expiration == dt.date(2099, 1, 1)


@pytest.mark.parametrize("name", ["a.b", "usb+storage", "x y", "$(id)", ""])
def test_kernel_module_names_are_checked_before_they_reach_a_pattern(name: str) -> None:
    from pytest_psdirect.compliance.resources.system import KernelModule

    with pytest.raises(ComplianceError, match="kernel module name"):
        KernelModule(name)
