"""The Windows compliance resources against a real Windows host over WinRM, when one is named
(the PSDIRECT_LIVE_WINRM_* variables of test_live_winrm.py); skipped otherwise. Read-only:
audit mode only, on settings every Windows Server has."""

from __future__ import annotations

import os

import pytest

PREFIX = "PSDIRECT_LIVE_WINRM_"
MISSING = [n for n in ("HOST", "USERNAME", "PASSWORD") if not os.environ.get(PREFIX + n)]
if MISSING:
    pytest.skip("no live WinRM host: set " + ", ".join(PREFIX + n for n in MISSING),
                allow_module_level=True)

from live.test_live_winrm import session  # noqa: E402,F401  (the module-scoped fixture)

from pytest_psdirect.compliance import (  # noqa: E402
    AccountPolicy,
    AuditPolicy,
    FirewallProfile,
    OptionalFeature,
    RegistryValue,
    WindowsService,
)
from pytest_psdirect.sessions import TargetSession  # noqa: E402

LSA = r"HKLM:\SYSTEM\CurrentControlSet\Control\Lsa"


def test_real_shapes_parse_into_properties(session: TargetSession) -> None:  # noqa: F811
    winrm = session.check(WindowsService("WinRM", status="Running"))
    assert winrm.compliant and winrm.properties["StartType"] in ("Automatic", "Manual")
    lsa = session.check(RegistryValue(LSA, "LimitBlankPasswordUse", 1))
    assert lsa.properties["KeyPresent"] and lsa.properties["Kind"] == "DWord"
    missing = session.check(RegistryValue(r"HKLM:\SOFTWARE\psdirect-no-such-key", "X", 1))
    assert [r.code for r in missing.reasons] == ["registry:registry:keynotpresent"]
    policy = session.check(AccountPolicy(MinimumPasswordLength=0))
    assert isinstance(policy.properties.get("MinimumPasswordLength"), int)
    public = session.check(FirewallProfile("Public"))
    assert public.properties["Enabled"] in ("True", "False", "NotConfigured")
    logon = session.check(AuditPolicy("Logon", "No Auditing"))
    assert logon.properties["Present"]
    feature = session.check(OptionalFeature("TelnetClient", state="Disabled"))
    assert feature.properties["Present"] in (True, False)
    batched = session.checker.check_all([WindowsService("WinRM"), RegistryValue(LSA, "NoLMHash", 1)])
    assert batched[0].compliant
