"""Windows compliance resources through a real PSRP session (OutOfProc, psrpcore) to the test
server, whose handlers (tests/psrpserver/windows.py) answer each script with the object shapes
Windows returns, from a simulated machine state that the set scripts really change."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from psrp_fixtures import server_wrapper
from psrpserver.windows import HANDLERS as SIMULATED

from pytest_psdirect import SessionPool, Settings, TargetSession, TransportRegistry, parse_target
from pytest_psdirect.compliance import assert_compliant, assert_reason
from pytest_psdirect.compliance.psresource import BATCH
from pytest_psdirect.compliance.resources.dsc import DscResource
from pytest_psdirect.compliance.resources.windows import (
    AccountPolicy,
    AuditPolicy,
    FirewallProfile,
    OptionalFeature,
    RegistryValue,
    WindowsService,
)
from pytest_psdirect.errors import ComplianceError

LSA = r"HKLM:\SYSTEM\CurrentControlSet\Control\Lsa"
HANDLERS = Path(__file__).parent / "psrpserver" / "windows.py"


def machine(*, weak: bool) -> dict[str, Any]:
    """A Windows Server 2022: hardened, or as it comes out of the box (weak)."""
    return {
        "registry": {LSA: {"LmCompatibilityLevel": {"Value": 3 if weak else 5, "Kind": "DWord"},
                           "Security Packages": {"Value": ["kerberos", "msv1_0"],
                                                 "Kind": "MultiString"}}},
        "services": {"RemoteRegistry": {"Status": "Running" if weak else "Stopped",
                                        "StartType": "Automatic" if weak else "Disabled"},
                     "EventLog": {"Status": "Running", "StartType": "Automatic"}},
        "features": {"SMB1Protocol": "Enabled" if weak else "DisabledWithPayloadRemoved"},
        "account": {"MinimumPasswordAge": 0, "MaximumPasswordAge": 42,
                    "MinimumPasswordLength": 0 if weak else 14, "PasswordComplexity": 1,
                    "PasswordHistorySize": 0 if weak else 24, "LockoutBadCount": 0 if weak else 5,
                    "NewAdministratorName": '"Administrator"'},
        "firewall": {"Domain": {"Enabled": "True", "DefaultInboundAction": "NotConfigured"},
                     "Public": {"Enabled": "False" if weak else "True",
                                "DefaultInboundAction": "Allow" if weak else "Block"}},
        "audit": {"Logon": "Success" if weak else "Success and Failure",
                  "Credential Validation": "No Auditing" if weak else "Success and Failure"},
        "dsc": {"AuditPolicySubcategory": {
            "InDesiredState": not weak,
            "Get": {"Name": "Logon", "AuditFlag": "Success" if weak else "Failure"},
            "Reasons": [{"Code": "AuditPolicySubcategory:AuditPolicySubcategory:auditflag",
                         "Phrase": "Logon audits Success, expected Failure."}] if weak else []},
            "BrokenResource": {"InDesiredState": False, "Get": {"Name": "x"},
                               "Reasons": [{"Code": "Broken:Other:x", "Phrase": "bad code"}]}},
    }


@pytest.fixture(scope="module")
def fake_pwsh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return server_wrapper(tmp_path_factory.mktemp("pwsh"))


def _session(fake_pwsh: Path, state: Path, weak: bool,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[TargetSession]:
    state.write_text(json.dumps(machine(weak=weak)))
    monkeypatch.setenv("PSRP_SERVER_HANDLERS", str(HANDLERS))
    monkeypatch.setenv("PSRP_WINDOWS_STATE", str(state))
    pool = SessionPool(TransportRegistry(), Settings(command_timeout=30), lambda t, r: None)
    yield pool.get(parse_target(f"pwsh://?exe={fake_pwsh}"))
    pool.close_all()


@pytest.fixture
def weak(fake_pwsh: Path, tmp_path: Path,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[TargetSession]:
    yield from _session(fake_pwsh, tmp_path / "weak.json", True, monkeypatch)


@pytest.fixture
def hardened(fake_pwsh: Path, tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[TargetSession]:
    yield from _session(fake_pwsh, tmp_path / "hardened.json", False, monkeypatch)


BASELINE = [
    RegistryValue(LSA, "LmCompatibilityLevel", 5),
    RegistryValue(LSA, "Security Packages", ("kerberos", "msv1_0"), kind="MultiString"),
    WindowsService("RemoteRegistry", status="Stopped", start_type="Disabled"),
    WindowsService("EventLog", status="Running", start_type="Automatic"),
    OptionalFeature("SMB1Protocol", state="Disabled"),
    AccountPolicy(MinimumPasswordLength=14, PasswordHistorySize=24, LockoutBadCount=5,
                  PasswordComplexity=1),
    FirewallProfile("Public", enabled=True, default_inbound="Block"),
    FirewallProfile("Domain", enabled=True, default_inbound="Block"),
    AuditPolicy("Logon", "Success and Failure"),
    AuditPolicy("Credential Validation", "Failure"),
    DscResource("AuditPolicySubcategory", "AuditPolicyDsc",
                {"Name": "Logon", "AuditFlag": "Failure"}),
]


def test_a_hardened_machine_is_compliant_everywhere(hardened: TargetSession) -> None:
    for resource in BASELINE:
        assert_compliant(hardened.check(resource))
    service = hardened.check(BASELINE[2])
    assert service.properties == {"Present": True, "Status": "Stopped", "StartType": "Disabled"}
    assert hardened.check(BASELINE[7]).properties["DefaultInboundAction"] == "NotConfigured"


def test_a_weak_machine_gets_a_reason_for_each_weakness(weak: TargetSession) -> None:
    codes = {r.resource.id: [x.code for x in r.reasons] for r in
             (weak.check(resource) for resource in BASELINE)}
    assert codes == {
        f"registry[{LSA}\\LmCompatibilityLevel]": ["registry:registry:valuemismatch"],
        f"registry[{LSA}\\Security Packages]": [],
        "service[RemoteRegistry]": ["service:service:status", "service:service:starttype"],
        "service[EventLog]": [],
        "windowsfeature[SMB1Protocol]": ["windowsfeature:windowsfeature:state"],
        "accountpolicy[LockoutBadCount,MinimumPasswordLength,PasswordComplexity,"
        "PasswordHistorySize]": ["accountpolicy:accountpolicy:lockoutbadcount",
                                 "accountpolicy:accountpolicy:minimumpasswordlength",
                                 "accountpolicy:accountpolicy:passwordhistorysize"],
        "firewall[Public]": ["firewall:firewall:enabled", "firewall:firewall:defaultinbound"],
        "firewall[Domain]": [],
        "auditpolicy[Logon]": ["auditpolicy:auditpolicy:setting"],
        "auditpolicy[Credential Validation]": ["auditpolicy:auditpolicy:setting"],
        "dsc[AuditPolicyDsc/AuditPolicySubcategory:Logon]":
            ["AuditPolicySubcategory:AuditPolicySubcategory:auditflag"],
    }
    result = weak.check(AccountPolicy(LockoutBadCount=5))
    assert_reason(result, "accountpolicy:accountpolicy:lockoutbadcount",
                  "LockoutBadCount is 0, expected at most 5.")
    missing = weak.check(RegistryValue(r"HKLM:\SOFTWARE\Policies\Nope", "X", 1))
    assert [str(r) for r in missing.reasons] == [
        r"registry:registry:keynotpresent  The registry key HKLM:\SOFTWARE\Policies\Nope isn't "
        "present on the machine."]
    dsc = weak.check(BASELINE[-1])
    assert dsc.properties["AuditFlag"] == "Success" and not dsc.properties["InDesiredState"]


def test_one_pipeline_answers_what_one_call_per_check_answers(weak: TargetSession) -> None:
    batched = weak.checker.check_all(BASELINE)
    assert weak.checker.round_trips == 1
    single = [weak.check(resource) for resource in BASELINE]
    assert weak.checker.round_trips == 1 + len(BASELINE)
    assert [(r.compliant, r.reasons, dict(r.properties)) for r in batched] == \
        [(r.compliant, r.reasons, dict(r.properties)) for r in single]
    assert sum(not r.compliant for r in batched) == 8


def test_a_dsc_resource_with_a_malformed_reason_code_is_an_error(weak: TargetSession) -> None:
    with pytest.raises(ComplianceError, match="'Broken:Other:x' breaks the rule 'the resource "
                                              "name is repeated"):
        weak.check(DscResource("BrokenResource", "BrokenDsc", {"Name": "x"}))


def test_audit_and_set_remediates_registry_service_and_dsc(weak: TargetSession,
                                                           tmp_path: Path) -> None:
    for resource in (BASELINE[0], BASELINE[2], BASELINE[-1],
                     RegistryValue(r"HKLM:\SOFTWARE\Policies\New", "Enabled", 1)):
        result = weak.check(resource, mode="audit-and-set")
        assert result.compliant and result.remediated and result.before, resource.id
    state = json.loads((tmp_path / "weak.json").read_text())
    assert state["registry"][LSA]["LmCompatibilityLevel"] == {"Value": 5, "Kind": "DWord"}
    assert state["services"]["RemoteRegistry"] == {"Status": "Stopped", "StartType": "Disabled"}
    assert state["registry"][r"HKLM:\SOFTWARE\Policies\New"]["Enabled"]["Value"] == 1
    assert state["dsc"]["AuditPolicySubcategory"]["InDesiredState"] is True
    feature = weak.check(BASELINE[4], mode="audit-and-set")  # features: audited only
    assert not feature.compliant and not feature.remediated and feature.reasons


SCRIPTS = {f"{cls.__name__}.{attr}": getattr(cls, attr)
           for cls in (RegistryValue, WindowsService, OptionalFeature, AccountPolicy,
                       FirewallProfile, AuditPolicy, DscResource)
           for attr in ("script", "set_script") if getattr(cls, attr)} | {"batch": BATCH}


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_resource_scripts_parse_as_powershell_and_are_answered(name: str) -> None:
    """A real PowerShell grammar parses each script; each has a param() block and a marker
    the simulated machine answers (so no script goes untested)."""
    tree_sitter = pytest.importorskip("tree_sitter")
    grammar = pytest.importorskip("tree_sitter_powershell")
    parser = tree_sitter.Parser(tree_sitter.Language(grammar.language()))
    script = SCRIPTS[name]
    assert not parser.parse(script.encode()).root_node.has_error, script
    marker, _, rest = script.partition("\n")
    assert marker.startswith("# psdirect:compliance-") and rest.startswith("param(")
    assert f"{marker}\n" in SIMULATED
