"""The command agent and its protocol: framing, refusal of bad values, and what it guarantees on
this machine (``local://`` runs the very agent SSH targets run): login-shell semantics, isolation
from background jobs, bounded waits, the output cap, and no process left when a session ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_psdirect import (
    CommandTimeout,
    OutputTooLarge,
    SessionBroken,
    SessionPool,
    Settings,
    TargetSession,
    TransportRegistry,
    parse_target,
)
from pytest_psdirect.transports.agentproto import Frame, FrameParser, ProtocolError, run_request
from pytest_psdirect.transports.local import LocalTransport


def _frames(*items: tuple[str, int, bytes]) -> bytes:
    return b"".join(b"%s %d %d\n%s" % (k.encode(), c, len(p), p) for k, c, p in items)


@given(payloads=st.lists(st.binary(max_size=300), max_size=6), cut=st.integers(1, 50))
def test_frames_survive_any_chunking_and_any_payload(payloads: list[bytes], cut: int) -> None:
    items = [("1" if i % 2 else "2", i, p + b"\nX 1 5\n") for i, p in enumerate(payloads)]
    data = _frames(*items)
    parser, got = FrameParser(), []
    for i in range(0, len(data), cut):
        got += parser.feed(data[i:i + cut])
    assert got == [Frame(k, c, p) for k, c, p in items]


def test_garbage_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="not a frame header"):
        FrameParser().feed(b"Traceback (most recent call last):\n")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"cmd": "echo a\x00b"}, "NUL"),
    ({"cmd": "echo \udcff"}, "lone surrogate"),
    ({"env": {"A B": "1"}}, "invalid environment variable name"),
    ({"env": {"A": "x\x00"}}, "NUL"),
    ({"cwd": "/tmp/\ud800"}, "lone surrogate"),
    ({"timeout": float("nan")}, "finite"),
    ({"timeout": float("inf")}, "finite"),
    ({"timeout": -1}, "more than 0"),
    ({"timeout": 1e10}, "more than 604800"),
    ({"timeout": True}, "not a number"),
])
def test_bad_values_are_refused_before_sending(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"cmd": "true", "timeout": 5.0, "limit": 10} | kwargs
    with pytest.raises(ValueError, match=message):
        run_request(1, **args)  # type: ignore[arg-type]


def test_request_is_one_json_line() -> None:
    line = run_request(3, "printf '%s\\n' \"$HOME\"", timeout=2, limit=9, env={"A": "é"}, cwd="/")
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {"op": "run", "id": 3, "cmd": "printf '%s\\n' \"$HOME\"",
                                "timeout": 2.0, "max": 9, "env": {"A": "é"}, "cwd": "/"}


@pytest.fixture
def local(monkeypatch: pytest.MonkeyPatch) -> Iterator[TargetSession]:
    monkeypatch.setenv("SHELL", "/bin/bash")
    pool = SessionPool(TransportRegistry(), Settings(command_timeout=10, max_output=4 << 20),
                       lambda t, r: None)
    yield pool.get(parse_target("local://"))
    pool.close_all()


def _alive(marker: str) -> list[str]:
    found = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout
    return found.split()


def _wait_gone(marker: str, seconds: float = 3.0) -> list[str]:
    deadline = time.monotonic() + seconds
    while (left := _alive(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def test_commands_run_in_the_login_shell_as_ssh_runs_them(local: TargetSession) -> None:
    r = local.run("[[ -n $BASH_VERSION ]] && echo -e 'a\\tb' && cat <<< $'x\\ty'; nosuchcmd")
    assert (r.rc, r.stdout) == (127, "a\tb\nx\ty\n")
    assert r.stderr == "bash: line 1: nosuchcmd: command not found\n"  # no trace of a wrapper
    expected = subprocess.run(["bash", "-c", "nosuchcmd"], capture_output=True, text=True).stderr
    assert r.stderr == expected


def test_dollar_dollar_is_the_commands_own_shell(local: TargetSession) -> None:
    first = local.check_output("echo $$")
    assert local.run("kill -9 $$").rc == -1  # killed by a signal, as testinfra's SSH backends say
    assert local.check_output("echo $$") not in (first, "")  # the next command is unharmed


def test_background_job_output_belongs_to_its_command_as_under_ssh(local: TargetSession) -> None:
    r = local.run("(sleep 0.3; echo late; echo late >&2) & echo now")
    assert (r.stdout, r.stderr) == ("now\nlate\n", "late\n")  # ssh waits for the pipes too
    r = local.run("sleep 0.3 >/dev/null 2>&1 & echo next")
    assert (r.stdout, r.stderr) == ("next\n", "") and r.duration < 0.25


def test_a_background_job_holding_the_pipes_runs_into_the_timeout(local: TargetSession) -> None:
    with pytest.raises(CommandTimeout) as info:
        local.run("sleep 5.4321 & echo started", timeout=0.5)  # `ssh host ...` would hang
    assert info.value.stdout == b"started\n"
    assert _wait_gone("sleep 5.4321") == []  # killed with its command's group
    assert local.check_output("echo next") == "next"


def test_everything_a_session_started_ends_with_it(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = SessionPool(TransportRegistry(), Settings(), lambda t, r: None)
    session = pool.get(parse_target("local://"))
    session.run("sleep 100.2468 >/dev/null 2>&1 &")
    with pytest.raises(CommandTimeout):
        session.run("sleep 100.1357", timeout=0.2)
    session.run("(sleep 100.3579 >/dev/null 2>&1 &) ; echo detached-from-the-shell-not-the-group")
    assert _alive("sleep 100.2468") and _alive("sleep 100.3579")
    pool.close_all()
    for marker in ("sleep 100.2468", "sleep 100.1357", "sleep 100.3579"):
        assert _wait_gone(marker) == [], f"{marker} outlived the session"


def test_timeout_keeps_partial_output_and_the_session(local: TargetSession) -> None:
    start = time.monotonic()
    with pytest.raises(CommandTimeout, match=r"timed out after 0\.3s") as info:
        local.run("echo started; exec sleep 9.87", timeout=0.3)
    assert time.monotonic() - start < 0.8
    assert info.value.stdout == b"started\n"
    assert _wait_gone("sleep 9.87") == []
    assert local.check_output("echo back") == "back"


def test_a_flood_is_stopped_at_the_cap(local: TargetSession) -> None:
    start = time.monotonic()
    with pytest.raises(OutputTooLarge, match=r"more than 4194304 bytes") as info:
        local.run("yes", timeout=20)
    assert time.monotonic() - start < 2
    assert info.value.stdout.startswith(b"y\ny\n") and "--psdirect-max-output" in str(info.value)
    assert local.check_output("echo ok") == "ok"


def test_a_flood_honours_its_timeout() -> None:
    pool = SessionPool(TransportRegistry(), Settings(max_output=1 << 40), lambda t, r: None)
    session = pool.get(parse_target("local://"))
    try:
        start = time.monotonic()
        with pytest.raises(CommandTimeout):
            session.run("while :; do echo flood; done", timeout=1)
        assert time.monotonic() - start < 1.5
    finally:
        pool.close_all()


def test_stream_sees_output_as_it_arrives(local: TargetSession) -> None:
    seen: list[tuple[int, bytes, float]] = []
    start = time.monotonic()
    r = local.run("echo one; sleep 0.3; echo two >&2",
                  stream=lambda n, chunk: seen.append((n, chunk, time.monotonic() - start)))
    assert [(n, c) for n, c, _ in seen] == [(1, b"one\n"), (2, b"two\n")]
    assert seen[0][2] < 0.25 and (r.stdout, r.stderr) == ("one\n", "two\n")


def test_agent_killed_while_idle_is_replaced_transparently(local: TargetSession) -> None:
    runner = local._transport._runner  # type: ignore[attr-defined]
    os.kill(int(runner.info["pid"]), signal.SIGKILL)
    time.sleep(0.2)
    assert local.check_output("echo fine") == "fine"


def test_agent_killed_during_a_command_is_reported_at_once(local: TargetSession) -> None:
    runner = local._transport._runner  # type: ignore[attr-defined]
    pid = int(runner.info["pid"])
    subprocess.Popen(["sh", "-c", f"sleep 0.3; kill -9 {pid}"])
    start = time.monotonic()
    with pytest.raises(SessionBroken, match="ended while running a command"):
        local.run("sleep 7.531 & sleep 8", timeout=30)
    assert time.monotonic() - start < 2
    assert local.check_output("echo next") == "next"


def test_without_python_on_the_target_each_command_gets_a_process() -> None:
    class NoPython(LocalTransport):
        def _spawn_agent(self, source: bytes):  # type: ignore[no-untyped-def]
            return super()._spawn_agent(b"import sys; sys.stderr.write('python3: not found'); "
                                        b"sys.exit(127)\n")

    transport = NoPython(parse_target("local://"), None, Settings())
    transport.open()
    try:
        r = transport.run("echo $0 fallback", timeout=5)
        assert r.stdout.endswith("fallback\n") and transport._fallback is not None
        assert "python3: not found" in transport._fallback
    finally:
        transport.close()


def test_a_process_that_detached_itself_ends_with_the_session() -> None:
    pool = SessionPool(TransportRegistry(), Settings(), lambda t, r: None)
    session = pool.get(parse_target("local://"))
    assert session.run("echo $PSDIRECT_SESSION").stdout.strip()  # the session's mark
    session.run("setsid sleep 100.8642 >/dev/null 2>&1 </dev/null &")
    session.run("(setsid sh -c 'sleep 100.9753' >/dev/null 2>&1 </dev/null &)")
    assert _alive("sleep 100.8642") and _alive("sleep 100.9753")
    pool.close_all()
    assert _wait_gone("sleep 100.8642") == [] and _wait_gone("sleep 100.9753") == []
