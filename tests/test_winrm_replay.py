"""Our WSMan engine over pypsrp's recorded exchanges with real Windows servers.

The sdist is downloaded at test time (skipped with the reason when that fails; in CI a failure).
Each test names the recordings it replays; what the server sent is real, what we send is our
engine's own (our scripts and parameters), checked action by action (see winrm_replay.py).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pypsrp.exceptions import WinRMTransportError
from pypsrp.wsman import WSMan
from winrm_replay import (
    Replay,
    action,
    blank_uuids,
    command_arguments,
    fetch_pypsrp_sdist,
    fixed_rsa_key_module,
    load_messages,
    zero_uuid,
)

from pytest_psdirect import Credential, Secret, Settings
from pytest_psdirect.errors import CommandTimeout, PowerShellFailed, SessionBroken
from pytest_psdirect.powershell import PSObjectDict, build_invocation
from pytest_psdirect.powershell.wsman import WSManEngine
from pytest_psdirect.powershell.wsman_options import WSManOptions
from pytest_psdirect.sessions import TargetSession
from pytest_psdirect.targets import parse_target
from pytest_psdirect.transports.winrm import WinRMTransport

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
STREAMS_SCRIPT = """$DebugPreference = 'Continue'
            $VerbosePreference = 'Continue'
            Write-Debug 'debug stream'
            Write-Verbose 'verbose stream'
            Write-Error 'error stream'
            Write-Output 'output stream'
            Write-Warning 'warning stream'
            Write-Information 'information stream'
            """


@pytest.fixture(scope="session")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        return fetch_pypsrp_sdist(tmp_path_factory.mktemp("pypsrp-sdist"))
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        if IN_CI:
            pytest.fail(f"CI must replay pypsrp's recorded WinRM exchanges, but: {exc}",
                        pytrace=False)
        pytest.skip(f"pypsrp's recorded WinRM exchanges are not available: {exc}")


Recording = list[dict[str, Any]]


@pytest.fixture
def replayed(recordings: Path, monkeypatch: pytest.MonkeyPatch
             ) -> Callable[..., tuple[WSManEngine, Replay]]:
    """``replayed(messages)`` -> an engine (not yet open) whose WSMan replays ``messages``."""
    monkeypatch.setattr(uuid, "uuid4", zero_uuid)
    signal = next(m["response"] for m in load_messages(recordings, "test_psrp_multiple_invocations")
                  if "SignalResponse" in m["response"])

    def make(messages: Recording, name: str = "replay") -> tuple[WSManEngine, Replay]:
        replay = Replay(messages, signal_response=signal, name=name)

        def factory(timeout: float) -> WSMan:
            wsman = WSMan("fakehost", connection_timeout=int(timeout))
            wsman.transport = replay
            return wsman

        engine = WSManEngine(WSManOptions(host="fakehost"), None, label="winrm://fakehost",
                             wsman_factory=factory)
        return engine, replay

    return make


def test_output_errors_and_every_stream(recordings: Path, replayed: Callable[..., Any]) -> None:
    engine, replay = replayed(load_messages(recordings, "test_psrp_stream_output_invocation"))
    engine.open(5)
    result = engine.invoke(build_invocation(STREAMS_SCRIPT, (), {}), timeout=30)
    engine.close()
    assert replay.finished and replay.actions == ["Create", "Receive", "Receive", "Command",
                                                  "Receive", "Signal", "Delete"]
    assert result.output == ["output stream"]
    (error,) = result.errors
    assert error.message == "error stream"
    assert error.fully_qualified_error_id == "Microsoft.PowerShell.Commands.WriteErrorException"
    assert error.category == "NotSpecified"
    assert error.exception_type == "Microsoft.PowerShell.Commands.WriteErrorException"
    assert error.script_position == "at <ScriptBlock>, <No file>: line 5"  # the ScriptStackTrace
    assert result.had_errors  # an error record arrived (pypsrp's own had_errors stays False)
    assert result.warning == ["warning stream"]
    assert result.verbose == ["verbose stream"]
    assert result.debug == ["debug stream"]
    assert result.information == ["information stream"]
    (progress,) = result.progress
    assert (progress.activity, progress.percent_complete) == ("Preparing modules for first use.", -1)
    assert not engine.alive


def test_terminating_error_fails_the_pipeline(recordings: Path, replayed: Callable[..., Any]) -> None:
    engine, _ = replayed(load_messages(recordings, "test_psrp_error_failed"))
    engine.open(5)
    result = engine.invoke(build_invocation(
        "$ErrorActionPreference = 'Stop'; Write-Output before; Write-Error error; "
        "Write-Output after", (), {}), timeout=30)
    engine.close()
    assert result.output == ["before"]
    assert [e.message for e in result.errors] == ["error"]
    assert result.had_errors


def test_runspace_is_reused_between_invocations(recordings: Path,
                                                replayed: Callable[..., Any]) -> None:
    """Two run_ps calls, one pool: one Create, two Commands, one Delete (and state would persist:
    the pool is the same shell id on the server)."""
    engine, replay = replayed(load_messages(recordings, "test_psrp_multiple_invocations"))
    engine.open(5)
    first = engine.invoke(build_invocation("1+1", (), {}), timeout=30)
    second = engine.invoke(build_invocation("1+1", (), {}), timeout=30)
    assert engine.alive
    engine.close()
    assert (first.output, second.output) == ([2], [2])
    assert replay.actions.count("Create") == 1 and replay.actions.count("Command") == 2
    assert replay.finished


def test_pscredential_parameter_after_key_exchange(recordings: Path, replayed: Callable[..., Any],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A Credential value goes as a PSCredential whose password is a SecureString encrypted
    with the session key the (recorded) server sent: never in clear text on the wire."""
    keys = fixed_rsa_key_module(recordings)
    monkeypatch.setattr("cryptography.hazmat.primitives.asymmetric.rsa.generate_private_key",
                        keys.gen_rsa_keypair)
    engine, replay = replayed(load_messages(recordings, "test_psrp_multiple_commands"))
    engine.open(5)
    password = "Pa55-recorded-" + "x" * 8
    credential = Credential("vagrant", Secret(password))
    result = engine.invoke(build_invocation("param($Cred) $Cred.GetNetworkCredential().Password",
                                            (), {"Cred": credential}), timeout=30)
    assert replay.actions[:6] == ["Create", "Receive", "Receive", "Send", "Receive", "Command"]
    command = command_arguments(replay.sent[5])
    assert password.encode() not in command and password.encode("utf-16-le") not in command
    match = re.search(rb'<SS N="Password">([^<]+)</SS>', command)
    assert match, "no SecureString password in the PSCredential we sent"
    assert engine._pool is not None
    element = ET.Element("SS")
    element.text = match.group(1).decode()
    assert engine._pool._serializer._deserialize_secure_string(element) == password
    assert b"System.Management.Automation.PSCredential" in command
    engine.close()
    # what the recorded server answered to pypsrp's own SecureString test, converted by us
    assert result.output[:2] == ["Hello World", "abc"]
    assert result.output[5] == 123
    service = result.output[6]
    assert isinstance(service, PSObjectDict)
    assert service.type_names[0] == "System.ServiceProcess.ServiceController"
    assert service["DisplayName"] == "Windows Remote Management (WS-Management)"
    assert service["Status"] == "Running"  # an enum: the name PowerShell prints
    assert service.to_string == "winrm"


def test_operation_timeouts_are_polled_through(recordings: Path,
                                               replayed: Callable[..., Any]) -> None:
    """The server's OperationTimeout faults (a long command) are not errors: polling goes on."""
    engine, replay = replayed(load_messages(recordings, "test_psrp_long_running_cmdlet"))
    engine.open(5)
    result = engine.invoke(build_invocation("Start-Sleep -Seconds 10; echo hi", (), {}), timeout=60)
    engine.close()
    assert result.output == ["hi"] and not result.errors
    assert replay.actions.count("Receive") == 5 and replay.finished


def test_timeout_stops_the_pipeline_and_the_session_goes_on(
        recordings: Path, replayed: Callable[..., Any]) -> None:
    """Past the invocation's timeout the pipeline gets PowerShell's stop signal; the pool stays.

    The server's long polls are the recorded OperationTimeout fault, answered after 0.2 s each
    for as long as we poll; then a recorded SignalResponse, a new pipeline, the Delete."""
    long_run = load_messages(recordings, "test_psrp_long_running_cmdlet")
    fault = blank_uuids(long_run[4]["response"])
    stop = next(m for m in load_messages(recordings, "test_psrp_nested_command")
                if "Signal" in m["request"])
    again = load_messages(recordings, "test_psrp_multiple_invocations")[3:6]
    engine, replay = replayed([*long_run[:4], stop, *again, long_run[-1]])
    record_send = replay.send
    polls = []

    def send(message: bytes, **kw: Any) -> bytes:
        if replay.index == 4 and action(message) == "Receive":  # the command runs on
            polls.append(message)
            replay.sent.append(message)
            time.sleep(0.2)
            raise WinRMTransportError("http", 500, fault)
        return record_send(message, **kw)

    replay.send = send  # type: ignore[method-assign]
    engine.open(5)
    start = time.monotonic()
    with pytest.raises(CommandTimeout, match="did not finish within 1 s"):
        engine.invoke(build_invocation("Start-Sleep -Seconds 10", (), {}), timeout=1)
    assert time.monotonic() - start < 2.0 and len(polls) >= 3
    assert b"<rsp:Code>powershell/signal/ctrl_c</rsp:Code>" in replay.sent[-1]  # PowerShell stop
    assert engine.alive
    assert engine.invoke(build_invocation("1+1", (), {}), timeout=30).output == [2]
    engine.close()
    assert replay.finished


def test_a_fault_on_receive_breaks_the_session(recordings: Path,
                                               replayed: Callable[..., Any]) -> None:
    """The server's fault "invalid selectors" (the shell is gone) -> SessionBroken with a hint."""
    streams = load_messages(recordings, "test_psrp_stream_output_invocation")
    gone = load_messages(recordings, "test_psrp_receive_failure")[3]
    engine, replay = replayed([*streams[:4], gone])
    engine.open(5)
    with pytest.raises(SessionBroken, match=r"runspace pool is gone \(WSMan fault 0x8033805B"
                       ) as info:
        engine.invoke(build_invocation("Get-Date", (), {}), timeout=30)
    assert "reopens the session" in (info.value.hint or "")
    assert not engine.alive
    engine.close()  # no Delete to a shell that is gone
    assert replay.finished


def test_target_session_run_ps_check_shows_the_error_record(
        recordings: Path, replayed: Callable[..., Any]) -> None:
    """Through the transport and TargetSession: check=True raises PowerShellFailed."""
    engine, _ = replayed(load_messages(recordings, "test_psrp_stream_output_invocation"))

    class ReplayedWinRM(WinRMTransport):
        def _make_engine(self) -> WSManEngine:
            return engine

    target = parse_target("winrm://fakehost?auth=kerberos")
    settings = Settings(connect_timeout=5, command_timeout=30)
    transport = ReplayedWinRM(target, None, settings)
    transport.open()
    session = TargetSession(target, transport, lambda: transport, settings)
    with pytest.raises(PowerShellFailed, match="error stream") as info:
        session.run_ps(STREAMS_SCRIPT, check=True)
    assert info.value.result.output == ["output stream"]
    session.close()
