"""A Windows Server baseline (CIS-like): LSA and SMB hardening, RDP, UAC, services, optional
features, password and lockout policy, firewall profiles and audit policy, read over a
PowerShell session (WinRM, PowerShell Direct, pwsh over SSH). Run it::

    pytest example_suites/windows_baseline --computer-name srv01 --credential-env WIN
    pytest example_suites/windows_baseline --vm-name web01 --hyperv-host hv01 --credential-env VM \\
        --compliance-report=windows.json --compliance-html=windows.html
"""

from __future__ import annotations

import pytest

from pytest_psdirect.compliance import (
    AccountPolicy,
    AuditPolicy,
    FirewallProfile,
    OptionalFeature,
    RegistryValue,
    WindowsService,
    assert_compliant,
)

LSA = r"HKLM:\SYSTEM\CurrentControlSet\Control\Lsa"
SERVICES = r"HKLM:\SYSTEM\CurrentControlSet\Services"
POLICIES = r"HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System"

REGISTRY = [
    RegistryValue(LSA, "LmCompatibilityLevel", 5),
    RegistryValue(LSA, "RestrictAnonymous", 1),
    RegistryValue(LSA, "RestrictAnonymousSAM", 1),
    RegistryValue(LSA, "NoLMHash", 1),
    RegistryValue(rf"{SERVICES}\LanmanServer\Parameters", "RequireSecuritySignature", 1),
    RegistryValue(rf"{SERVICES}\LanmanWorkstation\Parameters", "RequireSecuritySignature", 1),
    RegistryValue(r"HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp",
                  "UserAuthentication", 1),
    RegistryValue(POLICIES, "EnableLUA", 1),
    RegistryValue(POLICIES, "ConsentPromptBehaviorAdmin", 2),
    RegistryValue(r"HKLM:\SYSTEM\CurrentControlSet\Control\SecurityProviders\WDigest",
                  "UseLogonCredential", 0),
]
SYSTEM = [
    WindowsService("RemoteRegistry", status="Stopped", start_type="Disabled"),
    WindowsService("EventLog", status="Running", start_type="Automatic"),
    WindowsService("WinDefend", status="Running", start_type="Automatic"),
    OptionalFeature("SMB1Protocol", state="Disabled"),
    OptionalFeature("TelnetClient", state="Disabled"),
]
ACCOUNTS = [
    AccountPolicy(MinimumPasswordLength=14, check_id="password-length"),
    AccountPolicy(PasswordHistorySize=24, check_id="password-history"),
    AccountPolicy(MaximumPasswordAge=365, check_id="password-max-age"),
    AccountPolicy(PasswordComplexity=1, check_id="password-complexity"),
    AccountPolicy(LockoutBadCount=5, check_id="lockout-threshold"),
    AccountPolicy(EnableGuestAccount=0, check_id="guest-disabled"),
]
NETWORK = [
    FirewallProfile("Domain", enabled=True),
    FirewallProfile("Private", enabled=True),
    FirewallProfile("Public", enabled=True, default_inbound="Block"),
]
AUDIT = [
    AuditPolicy("Credential Validation", "Success and Failure"),
    AuditPolicy("Logon", "Success and Failure"),
    AuditPolicy("Security Group Management", "Success"),
]


@pytest.mark.compliance(impact=0.8, severity="high", tags=["registry"])
@pytest.mark.parametrize("resource", REGISTRY, ids=str)
def test_registry(target, resource):
    assert_compliant(target.check(resource))


@pytest.mark.compliance(impact=0.6, severity="medium", tags=["system"])
@pytest.mark.parametrize("resource", SYSTEM, ids=str)
def test_system(target, resource):
    assert_compliant(target.check(resource))


@pytest.mark.compliance(impact=0.9, severity="critical", tags=["accounts"])
@pytest.mark.parametrize("resource", ACCOUNTS, ids=str)
def test_account_policy(target, resource):
    assert_compliant(target.check(resource))


@pytest.mark.compliance(impact=0.8, severity="high", tags=["network"])
@pytest.mark.parametrize("resource", NETWORK, ids=str)
def test_firewall(target, resource):
    assert_compliant(target.check(resource))


@pytest.mark.compliance(impact=0.5, severity="medium", tags=["audit"])
@pytest.mark.parametrize("resource", AUDIT, ids=str)
def test_audit_policy(target, resource):
    assert_compliant(target.check(resource))
