"""The same PowerShell checks against a real Windows host over WinRM, when one is named:

PSDIRECT_LIVE_WINRM_HOST, PSDIRECT_LIVE_WINRM_USERNAME, PSDIRECT_LIVE_WINRM_PASSWORD, and
optionally PSDIRECT_LIVE_WINRM_PORT, _SSL (1/0), _AUTH (negotiate, ntlm, kerberos, basic,
credssp), _CERT_VALIDATION (1, 0 or a CA bundle path). Otherwise every test here is skipped
with the reason (one line in -rs).
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Iterator

import pytest

from pytest_psdirect import Credential, Secret, Settings
from pytest_psdirect.errors import PowerShellFailed
from pytest_psdirect.sessions import TargetSession
from pytest_psdirect.targets import parse_target
from pytest_psdirect.transports.winrm import WinRMTransport

PREFIX = "PSDIRECT_LIVE_WINRM_"
MISSING = [n for n in ("HOST", "USERNAME", "PASSWORD") if not os.environ.get(PREFIX + n)]
if MISSING:  # one skip line for the module, with what is missing
    pytest.skip("no live WinRM host: set " + ", ".join(PREFIX + n for n in MISSING),
                allow_module_level=True)


def live_url() -> str:
    env = {k[len(PREFIX):].lower(): v for k, v in os.environ.items() if k.startswith(PREFIX)}
    query = {k: env[k] for k in ("ssl", "auth", "cert_validation") if env.get(k)}
    port = f":{env['port']}" if env.get("port") else ""
    return f"winrm://{env['host']}{port}" + ("?" + urllib.parse.urlencode(sorted(query.items()))
                                             if query else "")


@pytest.fixture(scope="module")
def session() -> Iterator[TargetSession]:
    target = parse_target(live_url())
    credential = Credential(os.environ[PREFIX + "USERNAME"], Secret(os.environ[PREFIX + "PASSWORD"]))
    settings = Settings(connect_timeout=30, command_timeout=120)

    def connect() -> WinRMTransport:
        transport = WinRMTransport(target, credential, settings)
        transport.open()
        return transport

    s = TargetSession(target, connect(), connect, settings)
    yield s
    s.close()


def test_values_and_objects(session: TargetSession) -> None:
    r = session.run_ps("param($Name, $Count) 1..$Count | ForEach-Object { \"$Name$_\" }",
                       Name="x'; Remove-Item C:\\ #", Count=3)
    assert r.output == ["x'; Remove-Item C:\\ #1", "x'; Remove-Item C:\\ #2", "x'; Remove-Item C:\\ #3"]
    svc = session.run_ps("Get-Service -Name $Name", Name="WinRM").output[0]
    assert svc["Status"] == "Running" and "ServiceController" in svc.type_names[0]


def test_state_persists_between_calls(session: TargetSession) -> None:
    session.run_ps("$p = Get-Process -Id $PID")
    assert session.run_ps("$p.Id -eq $PID").output == [True]


def test_errors_and_streams(session: TargetSession) -> None:
    r = session.run_ps("Write-Warning w; Write-Verbose v -Verbose; Get-Item C:\\no\\such; 'after'")
    assert r.output == ["after"] and r.warning == ["w"] and r.verbose == ["v"]
    assert r.errors[0].category == "ObjectNotFound" and r.had_errors
    assert r.errors[0].fully_qualified_error_id.startswith("PathNotFound")
    with pytest.raises(PowerShellFailed, match="PathNotFound"):
        session.run_ps("Get-Item C:\\no\\such", check=True)


def test_pscredential_parameter(session: TargetSession) -> None:
    cred = Credential("someone", Secret("live-Secret-1"))
    r = session.run_ps("param($Cred) $Cred.UserName; $Cred.GetNetworkCredential().Password",
                       Cred=cred)
    assert r.output == ["someone", "live-Secret-1"]


def test_run_native(session: TargetSession) -> None:
    r = session.run("echo hello& exit /b 3")
    assert (r.rc, r.stdout.strip()) == (3, "hello")


def test_timeout_stops_and_session_goes_on(session: TargetSession) -> None:
    from pytest_psdirect.errors import CommandTimeout
    with pytest.raises(CommandTimeout):
        session.run_ps("Start-Sleep -Seconds 30", timeout=2)
    assert session.run_ps("1+1").output == [2]
