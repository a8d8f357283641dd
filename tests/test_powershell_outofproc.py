"""The OutOfProc engine against a real PSRP server (psrpcore's server side) run as ``pwsh -s``."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from psrp_fixtures import server_wrapper

from pytest_psdirect import Credential, Secret, Settings, TargetSession
from pytest_psdirect.errors import (
    CommandTimeout,
    ConnectFailed,
    PowerShellFailed,
    SessionBroken,
    TargetSpecError,
)
from pytest_psdirect.pool import SessionPool
from pytest_psdirect.powershell import PSObjectDict
from pytest_psdirect.targets import parse_target
from pytest_psdirect.transports import TransportRegistry


@pytest.fixture(scope="module")
def fake_pwsh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return server_wrapper(tmp_path_factory.mktemp("pwsh"))


@pytest.fixture
def pool() -> Iterator[SessionPool]:
    p = SessionPool(TransportRegistry(), Settings(connect_timeout=5, command_timeout=10),
                    lambda t, r: None)
    yield p
    p.close_all()


@pytest.fixture
def ps(pool: SessionPool, fake_pwsh: Path) -> TargetSession:
    return pool.get(parse_target(f"pwsh://?exe={fake_pwsh}"))


def test_output_objects_and_types(ps: TargetSession) -> None:
    out = ps.run_ps("psrp-test:objects").output
    assert out[:7] == ["text", 42, True, 2.5, None, [1, "two"], {"k": "v", "n": 1}]
    assert [type(v) for v in out[:4]] == [str, int, bool, float]  # plain Python values
    custom, svc = out[7], out[8]
    assert isinstance(custom, PSObjectDict) and custom == {"Name": "x", "Size": 3}
    assert custom.type_names[0] == "System.Management.Automation.PSCustomObject"
    assert svc["Status"] == "Running" and svc["DependentServices"] == ["HTTP", "WAS"]
    assert svc.type_names == ("System.ServiceProcess.ServiceController", "System.Object")
    assert out[9] == b"\x00\x01"


def test_every_stream(ps: TargetSession) -> None:
    r = ps.run_ps("psrp-test:streams")
    assert r.output == ["out"]
    assert (r.warning, r.verbose, r.debug, r.information) == (
        ["careful"], ["chatty"], ["internals"], ["info text"])
    assert [(p.activity, p.status, p.percent_complete) for p in r.progress] == [
        ("Copying", "3 of 4", 75)]
    assert r.had_errors
    (err,) = r.errors
    assert err.message == "it broke" and err.category == "ObjectNotFound"
    assert err.fully_qualified_error_id == "PathNotFound,Microsoft.PowerShell.Commands.GetItemCommand"
    assert err.target_object == "C:\\nope"
    assert err.exception_type == "System.Management.Automation.ItemNotFoundException"
    assert err.script_position.startswith("At line:1 char:1")


def test_errors_are_non_terminating_unless_check(ps: TargetSession) -> None:
    r = ps.run_ps("psrp-test:streams")
    assert r.had_errors and r.output == ["out"]  # collected, not raised
    with pytest.raises(PowerShellFailed) as info:
        ps.run_ps("psrp-test:streams", check=True)
    assert "it broke (ObjectNotFound; PathNotFound," in str(info.value)
    assert info.value.result.output == ["out"]


def test_terminating_error_is_an_error_record(ps: TargetSession) -> None:
    r = ps.run_ps("psrp-test:throw")
    assert r.output == ["before"] and r.had_errors
    assert r.errors[-1].message == "terminating failure"


def test_values_travel_as_data(ps: TargetSession) -> None:
    nasty = "it's \"quoted\" $(Remove-Item C:\\) ; `whoami` \n@{}"
    r = ps.run_ps("psrp-test:echo", nasty, 7, Name=nasty, Nested={"l": [1, nasty]})
    (echo,) = r.output
    assert echo["Args"] == [nasty, 7]
    assert echo["Params"] == {"Name": nasty, "Nested": {"l": [1, nasty]}}


def test_int64_values_travel_and_bad_values_are_refused_before_sending(ps: TargetSession) -> None:
    """-2**40 used to go as an Int32 and kill the server's runspace; 2**70 and sets fit nothing."""
    big = [-(2**40), 2**40, -(2**63), 2**63 - 1, -(2**31), 2**31 - 1]
    r = ps.run_ps("# psrp-test:echo\nparam($V)", V=big)
    assert r.output[0]["Params"]["V"] == big
    for bad in (2**70, [{"a": -(2**64)}], {1, 2}):
        with pytest.raises(ValueError, match=r"Int64|no set type"):
            ps.run_ps("# psrp-test:echo\nparam($V)", V=bad)
    assert ps.run_ps("# psrp-test:echo\nparam($V)", V=1).output[0]["Params"]["V"] == 1


def test_state_persists_between_calls(ps: TargetSession) -> None:
    ps.run_ps("psrp-test:set $p = $Value", Value="kept")
    assert ps.run_ps("psrp-test:get $p").output == ["kept"]


def test_pscredential_parameter(ps: TargetSession, caplog: pytest.LogCaptureFixture) -> None:
    cred = Credential("CORP\\alice", Secret("s3cr3t-PSCredential"))
    with caplog.at_level(logging.DEBUG):
        (row,) = ps.run_ps("param($Cred) psrp-test:cred $Cred.UserName", Cred=cred,
                           Plain="plain-value-x").output
    assert "s3cr3t-PSCredential" not in caplog.text and "plain-value-x" not in caplog.text
    assert row["UserName"] == "CORP\\alice"
    assert row["PasswordSha256"] == hashlib.sha256(b"s3cr3t-PSCredential").hexdigest()


def test_timeout_stops_the_pipeline_and_the_session_stays(ps: TargetSession) -> None:
    start = time.monotonic()
    with pytest.raises(CommandTimeout) as info:
        ps.run_ps("psrp-test:sleep", Seconds=30, timeout=0.5)
    assert 0.5 <= time.monotonic() - start < 2.0
    assert "pipeline was stopped" in str(info.value)
    ps.run_ps("psrp-test:set", Value="after")
    assert ps.run_ps("psrp-test:get").output == ["after"]  # same pool: state survived


def test_peer_killed_mid_invoke_fails_at_once(ps: TargetSession) -> None:
    start = time.monotonic()
    with pytest.raises(SessionBroken, match="PowerShell ended the session"):
        ps.run_ps("psrp-test:die", timeout=30)
    assert time.monotonic() - start < 2.0  # not the 30 s timeout


def test_run_native_command(ps: TargetSession) -> None:
    r = ps.run("echo out; echo err >&2; exit 3")
    assert (r.rc, r.stdout, r.stderr) == (3, "out\n", "err\n")


def test_unknown_script_is_an_error_record(ps: TargetSession) -> None:
    r = ps.run_ps("Get-Nothing")
    assert r.had_errors and r.errors[0].category == "ObjectNotFound"


def test_missing_pwsh_names_how_to_install(pool: SessionPool) -> None:
    with pytest.raises(ConnectFailed) as info:
        pool.get(parse_target("pwsh://?exe=/nonexistent/pwsh"))
    assert "'/nonexistent/pwsh' not found" in info.value.message
    assert "install PowerShell 7" in (info.value.hint or "")


def test_not_psrp_peer_is_a_clear_error(pool: SessionPool) -> None:
    with pytest.raises(ConnectFailed) as info:
        pool.get(parse_target("pwsh://?exe=/bin/echo"))  # prints its argv and exits
    assert "does not speak PSRP" in info.value.message and "-NoLogo" in info.value.message


def test_pwsh_url_names_no_host() -> None:
    assert parse_target("pwsh://").url == "pwsh://"
    with pytest.raises(TargetSpecError, match="names a host"):
        parse_target("pwsh://elsewhere")
