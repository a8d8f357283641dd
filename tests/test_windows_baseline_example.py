"""example_suites/windows_baseline as users run it, against two simulated Windows Servers
(the test PSRP server with tests/psrpserver/windows.py answering in Windows' shapes) over real
OutOfProc PSRP sessions: green on the hardened one, a reason for each weakness on the other;
then --compliance-mode audit-and-set fixes what can be set and a new audit agrees."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from psrp_fixtures import SERVER

SUITE = Path(__file__).parent.parent / "example_suites" / "windows_baseline"
HANDLERS = Path(__file__).parent / "psrpserver" / "windows.py"
LSA = r"HKLM:\SYSTEM\CurrentControlSet\Control\Lsa"
SERVICES = r"HKLM:\SYSTEM\CurrentControlSet\Services"
POLICIES = r"HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System"
CHECKS = 27


def server_2022(*, weak: bool) -> dict[str, Any]:
    """Windows Server 2022: hardened, or with the out-of-the-box values CIS flags (weak)."""
    def dword(value: int) -> dict[str, Any]:
        return {"Value": value, "Kind": "DWord"}

    registry = {
        LSA: {"LmCompatibilityLevel": dword(3 if weak else 5), "RestrictAnonymous":
              dword(0 if weak else 1), "RestrictAnonymousSAM": dword(1), "NoLMHash": dword(1)},
        rf"{SERVICES}\LanmanServer\Parameters": {"RequireSecuritySignature": dword(0 if weak
                                                                                  else 1)},
        rf"{SERVICES}\LanmanWorkstation\Parameters": {"RequireSecuritySignature": dword(1)},
        r"HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp":
            {"UserAuthentication": dword(1)},
        POLICIES: {"EnableLUA": dword(1), "ConsentPromptBehaviorAdmin": dword(5 if weak else 2)},
    }
    if not weak:  # the WDigest key does not exist on a fresh install
        registry[r"HKLM:\SYSTEM\CurrentControlSet\Control\SecurityProviders\WDigest"] = {
            "UseLogonCredential": dword(0)}
    return {
        "registry": registry,
        "services": {"RemoteRegistry": {"Status": "Running" if weak else "Stopped",
                                        "StartType": "Automatic" if weak else "Disabled"},
                     "EventLog": {"Status": "Running", "StartType": "Automatic"},
                     "WinDefend": {"Status": "Running", "StartType": "Automatic"}},
        "features": {"SMB1Protocol": "Enabled" if weak else "DisabledWithPayloadRemoved",
                     "TelnetClient": "Disabled"},
        "account": {"MinimumPasswordAge": 1, "MaximumPasswordAge": 42 if weak else 60,
                    "MinimumPasswordLength": 7 if weak else 14, "PasswordComplexity": 1,
                    "PasswordHistorySize": 24, "LockoutBadCount": 0 if weak else 5,
                    "EnableGuestAccount": 0, "NewGuestName": '"Guest"'},
        "firewall": {"Domain": {"Enabled": "True", "DefaultInboundAction": "NotConfigured"},
                     "Private": {"Enabled": "True", "DefaultInboundAction": "NotConfigured"},
                     "Public": {"Enabled": "True", "DefaultInboundAction":
                                "Allow" if weak else "Block"}},
        "audit": {"Credential Validation": "Success" if weak else "Success and Failure",
                  "Logon": "Success and Failure", "Security Group Management": "Success"},
        "dsc": {},
    }


WEAK_REASONS = {
    f"test_registry[registry[{LSA}\\LmCompatibilityLevel]]": "registry:registry:valuemismatch",
    f"test_registry[registry[{LSA}\\RestrictAnonymous]]": "registry:registry:valuemismatch",
    f"test_registry[registry[{SERVICES}\\LanmanServer\\Parameters\\RequireSecuritySignature]]":
        "registry:registry:valuemismatch",
    f"test_registry[registry[{POLICIES}\\ConsentPromptBehaviorAdmin]]":
        "registry:registry:valuemismatch",
    "test_registry[registry[HKLM:\\SYSTEM\\CurrentControlSet\\Control\\SecurityProviders\\"
    "WDigest\\UseLogonCredential]]": "registry:registry:keynotpresent",
    "test_system[service[RemoteRegistry]]": "service:service:status",
    "test_system[windowsfeature[SMB1Protocol]]": "windowsfeature:windowsfeature:state",
    "test_account_policy[password-length]": "accountpolicy:accountpolicy:minimumpasswordlength",
    "test_account_policy[lockout-threshold]": "accountpolicy:accountpolicy:lockoutbadcount",
    "test_firewall[firewall[Public]]": "firewall:firewall:defaultinbound",
    "test_audit_policy[auditpolicy[Credential Validation]]": "auditpolicy:auditpolicy:setting",
}
SETTABLE = {k for k in WEAK_REASONS if k.startswith(("test_registry", "test_system[service"))}


def _pwsh(directory: Path, name: str, state: Path) -> str:
    """A pwsh look-alike serving one simulated machine: the URL of a pwsh:// target."""
    exe = directory / f"{name}-pwsh"
    exe.write_text(f'#!/bin/sh\nexport PSRP_SERVER_HANDLERS="{HANDLERS}"\n'
                   f'export PSRP_WINDOWS_STATE="{state}"\nexec "{sys.executable}" "{SERVER}" "$@"\n')
    exe.chmod(0o755)
    return f"pwsh://?exe={exe}"


def _report(path: Path) -> dict[str, dict[str, Any]]:
    """Target -> check (as written, not as pytest escapes it in ids) -> row."""
    data = json.loads(path.read_text())
    return {t["target"]: {c["check"]: c for c in t["checks"]} for t in data["targets"]}


def test_green_on_a_hardened_server_reasons_on_a_weak_one_then_remediated(
        pytester: pytest.Pytester, tmp_path: Path) -> None:
    urls = {}
    for name, weak in (("hardened", False), ("weak", True)):
        state = tmp_path / f"{name}.json"
        state.write_text(json.dumps(server_2022(weak=weak)))
        urls[name] = _pwsh(tmp_path, name, state)
    hosts = ",".join(urls.values())
    result = pytester.runpytest_subprocess(str(SUITE), "--hosts", hosts, "-p", "no:cacheprovider",
                                           "--compliance-report=audit.json")
    result.assert_outcomes(passed=2 * CHECKS - len(WEAK_REASONS), failed=len(WEAK_REASONS))
    checks = _report(pytester.path / "audit.json")
    assert {c["complianceStatus"] for c in checks[urls["hardened"]].values()} == {"Compliant"}
    failing = {name: [r["code"] for res in c["resources"] for r in res["reasons"]]
               for name, c in checks[urls["weak"]].items() if c["complianceStatus"] != "Compliant"}
    assert {name: codes[0] for name, codes in failing.items()} == WEAK_REASONS
    assert failing["test_system[service[RemoteRegistry]]"] == ["service:service:status",
                                                               "service:service:starttype"]
    result.stdout.fnmatch_lines([
        "*registry:registry:valuemismatch  The registry value LmCompatibilityLevel in "
        "HKLM:\\SYSTEM\\CurrentControlSet\\Control\\Lsa is 3 (DWord), expected 5 (DWord).*"])

    fix = pytester.runpytest_subprocess(str(SUITE), "--hosts", urls["weak"], "-p",
                                        "no:cacheprovider", "--compliance-mode", "audit-and-set",
                                        "--compliance-report=fix.json")
    fix.assert_outcomes(passed=CHECKS - len(WEAK_REASONS) + len(SETTABLE),
                        failed=len(WEAK_REASONS) - len(SETTABLE))
    fixed = _report(pytester.path / "fix.json")[urls["weak"]]
    for name in SETTABLE:
        assert fixed[name]["resources"][0]["remediated"], name
    again = pytester.runpytest_subprocess(str(SUITE), "--hosts", urls["weak"], "-p",
                                          "no:cacheprovider")
    again.assert_outcomes(passed=CHECKS - len(WEAK_REASONS) + len(SETTABLE),
                          failed=len(WEAK_REASONS) - len(SETTABLE))
