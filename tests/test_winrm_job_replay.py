"""``start_ps`` jobs on winrm:// across a disconnect: our engine against pypsrp's recording
``test_psrp_disconnected_commands`` (a real Windows server: a pool and a running pipeline
disconnected, then connected to again by a new client, the output collected).

The recording holds the server's real answers to Create/Command/Disconnect, to a new client's
Connect (pool, then pipeline) and to the Receives that follow with the pipeline's output
(``a`` and ``b``, written before and after a sleep). We replay them in the order our job sends
them; what the recording cannot show (and is not verified here): a server's answer to a Disconnect
sent over a *new* connection after the old one died without one (we send it and the recording's
Disconnect answer is replayed), and to a Receive cut off mid-way.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from pypsrp.complex_objects import PSInvocationState
from pypsrp.wsman import WSMan
from test_winrm_replay import recordings  # noqa: F401  (the sdist fixture)
from winrm_replay import Replay, action, load_messages, zero_uuid

from pytest_psdirect import Settings
from pytest_psdirect.errors import UnsupportedOperation
from pytest_psdirect.jobs import Job
from pytest_psdirect.powershell import build_invocation
from pytest_psdirect.powershell.engine import PSEngine
from pytest_psdirect.powershell.wsman import WSManEngine
from pytest_psdirect.powershell.wsman_job import WSManJob
from pytest_psdirect.powershell.wsman_options import WSManOptions
from pytest_psdirect.targets import parse_target
from pytest_psdirect.transports.winrm import WinRMTransport

SCRIPT = "param($First) Write-Output $First; Start-Sleep -Seconds 5; Write-Output 'b'"


class JobReplay(Replay):
    """A Replay that can cut the connection at the first Receive after the Command (``drop``),
    or hold the Command's answer until ``gate`` is set (so a test acts at a known point)."""

    def __init__(self, *args: Any, drop: bool = False, refuse: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.drop = drop
        self.refuse = refuse  # requests refused after the drop (the network still down)
        self.command_seen = threading.Event()
        self.gate = threading.Event()

    def send(self, message: bytes, **kwargs: Any) -> bytes:
        sent = action(message)
        if self.drop and sent == "Receive" and "Command" in self.actions:
            self.drop = False
            self.actions.append("<dropped>")
            raise requests.ConnectionError(ConnectionResetError(104, "Connection reset by peer"))
        if self.refuse and "<dropped>" in self.actions:
            self.refuse -= 1
            self.actions.append(f"<refused {sent}>")
            raise requests.ConnectionError(ConnectionRefusedError(111, "Connection refused"))
        answer = super().send(message, **kwargs)
        if sent == "Command":
            self.command_seen.set()
            assert self.gate.wait(10), "the test never opened the gate"
        return answer


@pytest.fixture
def disconnected(recordings: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
                 ) -> list[dict[str, Any]]:
    """Create+Command+Disconnect of the first pool, its Connect as a new client and the
    Receives with the output, the Delete (the second pool and the Enumerate left out)."""
    monkeypatch.setattr(uuid, "uuid4", zero_uuid)
    messages = load_messages(recordings, "test_psrp_disconnected_commands")
    assert [action(m["request"]) for m in messages[13:18]] == ["Connect", "Receive", "Connect",
                                                                 "Receive", "Receive"]
    return [*messages[0:5], *messages[13:18], messages[24]]


def signal_answer(recordings: Path) -> str:  # noqa: F811
    return next(m["response"] for m in load_messages(recordings, "test_psrp_multiple_invocations")
                if "SignalResponse" in m["response"])


def engine_on(replay: Replay) -> WSManEngine:
    def factory(timeout: float) -> WSMan:
        wsman = WSMan("fakehost", connection_timeout=int(timeout))
        wsman.transport = replay
        return wsman

    return WSManEngine(WSManOptions(host="fakehost"), None, label="winrm://fakehost",
                       wsman_factory=factory)


def test_engine_disconnects_and_connects_again(recordings: Path,  # noqa: F811
                                               disconnected: list[dict[str, Any]]) -> None:
    replay = JobReplay(disconnected, signal_response=signal_answer(recordings))
    replay.gate.set()
    engine = engine_on(replay)
    engine.open(5)
    start = time.monotonic()
    invocation = build_invocation(SCRIPT, (), {"First": "a"})
    ps = engine.begin(invocation)
    engine.disconnect()
    assert ps.state == PSInvocationState.DISCONNECTED
    engine.reconnect(ps)
    while ps.state == PSInvocationState.RUNNING:
        ps.poll_invoke(timeout=5)
    result = engine.finish(ps, invocation, start)
    engine.close()
    assert replay.finished and replay.actions == [
        "Create", "Receive", "Receive", "Command", "Disconnect",
        "Connect", "Receive", "Connect", "Receive", "Receive", "Signal", "Delete"]
    assert result.output == ["a", "b"] and not result.had_errors
    assert b"connectXml" in replay.sent[5]  # the pool's Connect as a new client (MS-PSRP)
    assert b"CommandId=" in replay.sent[7]  # then the pipeline's


class ReplayedWinRM(WinRMTransport):
    """winrm:// whose engines replay ``REPLAY`` (set by the test)."""

    replay: Replay | None = None

    def _make_engine(self) -> PSEngine:
        assert self.replay is not None
        return engine_on(self.replay)


def job_on(replay: JobReplay) -> WSManJob:
    ReplayedWinRM.replay = replay
    transport = ReplayedWinRM(parse_target("winrm://fakehost?auth=kerberos"), None, Settings())
    job = transport.start_ps(build_invocation(SCRIPT, (), {"First": "a"}), timeout=60)
    assert isinstance(job, WSManJob)
    return job


def test_job_survives_a_dropped_connection(recordings: Path,  # noqa: F811
                                           disconnected: list[dict[str, Any]]) -> None:
    replay = JobReplay(disconnected, signal_response=signal_answer(recordings), drop=True)
    replay.gate.set()
    job = job_on(replay)
    result = job.result(timeout=30)
    assert result.output == ["a", "b"]
    assert job.reconnects == 1
    assert replay.finished and replay.actions == [
        "Create", "Receive", "Receive", "Command", "<dropped>", "Disconnect",
        "Connect", "Receive", "Connect", "Receive", "Receive", "Signal", "Delete"]


def test_job_retries_until_the_server_answers_again(recordings: Path,  # noqa: F811
                                                    disconnected: list[dict[str, Any]]) -> None:
    messages = [*disconnected[:4], *disconnected[5:]]  # no Disconnect answered: it is refused
    replay = JobReplay(messages, signal_response=signal_answer(recordings), drop=True, refuse=2)
    replay.gate.set()
    job = job_on(replay)
    assert job.result(timeout=30).output == ["a", "b"]
    assert replay.finished and replay.actions[3:8] == [
        "Command", "<dropped>", "<refused Disconnect>", "<refused Connect>", "Connect"]


def test_job_disconnect_then_reconnect(recordings: Path,  # noqa: F811
                                       disconnected: list[dict[str, Any]]) -> None:
    replay = JobReplay(disconnected, signal_response=signal_answer(recordings))
    job = job_on(replay)
    assert replay.command_seen.wait(10)
    job.disconnect(wait=False)  # asked while the Command is in flight: no Receive before it
    replay.gate.set()
    job.disconnect()  # returns once disconnected
    assert replay.actions[-1] == "Disconnect" and not job.done
    assert not job.wait(1.5)  # stays disconnected until asked to reconnect
    job.reconnect()
    assert job.result(timeout=30).output == ["a", "b"]
    assert job.reconnects == 1 and replay.finished


def test_job_left_disconnected_times_out(recordings: Path,  # noqa: F811
                                         disconnected: list[dict[str, Any]]) -> None:
    replay = JobReplay([*disconnected[:5], disconnected[-1]],
                       signal_response=signal_answer(recordings))
    ReplayedWinRM.replay = replay
    transport = ReplayedWinRM(parse_target("winrm://fakehost?auth=kerberos"), None, Settings())
    job = transport.start_ps(build_invocation(SCRIPT, (), {"First": "a"}), timeout=2)
    assert replay.command_seen.wait(10)
    job.disconnect(wait=False)
    replay.gate.set()
    job.disconnect()
    with pytest.raises(Exception, match="still disconnected") as info:
        job.result(timeout=10)
    assert type(info.value).__name__ == "CommandTimeout"
    assert replay.finished and replay.actions[-1] == "Delete"  # closing deletes the pool


def test_other_jobs_say_they_cannot_disconnect() -> None:
    job: Job[int] = Job(lambda: 1, lambda: None, label="local://", what="true")
    with pytest.raises(UnsupportedOperation, match="winrm://"):
        job.disconnect()
    with pytest.raises(UnsupportedOperation):
        job.reconnect()
    assert job.result(timeout=5) == 1
