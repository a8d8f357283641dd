"""Hostile input, on both transports (local:// and a real sshd host of the lab), via the public API.

Each bad Python value must be refused with ValueError before anything is sent, and the session
must stay usable; hostile output (forged framing, binary, floods, closed fds, background jobs)
must come back exact or fail only the command that produced it.
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from conftest import describe, lab_host, user_pids, wait_user_pids_gone
from pytest_psdirect import SessionPool, Settings, TargetSession, TransportRegistry, parse_target
from pytest_psdirect.lab import procs
from pytest_psdirect.lab.sshlab import LabHost, SSHLab


@dataclass
class Where:
    """One target of the test (local:// or lab1) and the pools opened on it."""

    kind: str
    url: str
    settings: dict[str, Any]
    host: LabHost | None = None
    pools: list[SessionPool] = field(default_factory=list)
    markers: list[str] = field(default_factory=list)  # processes to end after the test
    files: list[str] = field(default_factory=list)  # lab hosts share this machine's /tmp

    def sent_marker(self) -> str:
        """A path that only exists if a command that should have been refused ran."""
        path = f"/tmp/psd-sent-{secrets.token_hex(4)}"
        self.files.append(path)
        return path

    def open(self, **overrides: Any) -> TargetSession:
        pool = SessionPool(TransportRegistry(), Settings(**{**self.settings, **overrides}),
                           lambda t, r: None)
        self.pools.append(pool)
        return pool.get(parse_target(self.url))

    def marked(self, marker: str) -> list[int]:
        """Live processes on the target whose command line holds ``marker``."""
        if self.host is not None:
            return [p for p in user_pids(self.host) if marker in procs.cmdline(p)]
        return [p for p in map(int, filter(str.isdigit, os.listdir("/proc")))
                if marker in procs.cmdline(p) and procs.alive(p) and p != os.getpid()]


@pytest.fixture(params=["local", "ssh"])
def where(request: pytest.FixtureRequest) -> Iterator[Where]:
    if request.param == "local":
        w = Where("local", "local://", {"command_timeout": 30, "connect_timeout": 5})
    else:
        lab: SSHLab = request.getfixturevalue("ssh_lab")
        host = lab_host(lab)
        w = Where("ssh", host.url, {"ssh_key": str(lab.key_file), "command_timeout": 30,
                                    "known_hosts": str(lab.known_hosts), "connect_timeout": 5}, host)
    yield w
    for pool in w.pools:
        pool.close_all()
    for marker in w.markers:  # what the executor failed to end: ours to clean up, by PID
        procs.end_processes(w.marked(marker))
    for path in w.files:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


@pytest.fixture
def session(where: Where) -> TargetSession:
    return where.open()


def assert_usable(session: TargetSession) -> None:
    __tracebackhide__ = True
    r = session.run("echo still-usable", timeout=10)
    assert (r.rc, r.stdout, r.stderr) == (0, "still-usable\n", ""), r


HOSTILE_ARGS = ["it's", 'say "hi"', "$(touch /tmp/psd-pwned)", "`touch /tmp/psd-pwned`",
                "a\nb\n", "; touch /tmp/psd-pwned", "*", "\\", "$HOME", "-n", "", " lead",
                "tab\there", "\u00e9\u4e2d\U0001f600", "%s", "'\"'\"'"]


def test_quotes_substitutions_and_newlines_are_data(where: Where, session: TargetSession) -> None:
    where.files.append("/tmp/psd-pwned")
    for arg in HOSTILE_ARGS:
        r = session.run("printf '%%s|' %s", arg)
        assert (r.rc, r.stdout) == (0, arg + "|"), arg
    assert session.run("test -e /tmp/psd-pwned").rc == 1, "an argument was executed"
    r = session.run("echo one\necho 'two\nlines'\n\necho three")
    assert r.stdout == "one\ntwo\nlines\nthree\n"


@pytest.mark.parametrize("call", [
    pytest.param(lambda s, m: s.run("touch %s; echo %s", m, "a\0b"), id="nul-in-arg"),
    pytest.param(lambda s, m: s.run(f"touch {m}; echo a\0b"), id="nul-in-command"),
    pytest.param(lambda s, m: s.run("touch %s; echo %s", m, "\udc80"), id="lone-surrogate-arg"),
    pytest.param(lambda s, m: s.run(f"touch {m}; echo \ud800"), id="lone-surrogate-command"),
    pytest.param(lambda s, m: s.run(f"touch {m}", env={"A B": "1"}), id="env-name-space"),
    pytest.param(lambda s, m: s.run(f"touch {m}", env={"A=B": "1"}), id="env-name-equals"),
    pytest.param(lambda s, m: s.run(f"touch {m}", env={"A": "x\0y"}), id="env-value-nul"),
    pytest.param(lambda s, m: s.run(f"touch {m}", env={"A": "\udc80"}), id="env-value-surrogate"),
    pytest.param(lambda s, m: s.run(f"touch {m}", cwd="/tmp\0x"), id="cwd-nul"),
])
def test_bad_values_are_refused_before_sending(where: Where, session: TargetSession,
                                               call: Any) -> None:
    marker = where.sent_marker()
    with pytest.raises(ValueError):
        call(session, marker)
    assert_usable(session)
    assert session.run("test -e %s", marker).rc == 1, "the refused command was sent anyway"


@pytest.mark.parametrize("timeout", [math.nan, math.inf, -math.inf, -1, 0, 1e10, float("1e309")],
                         ids=["nan", "inf", "-inf", "-1", "0", "1e10", "1e309"])
def test_bad_timeouts_are_refused_before_sending(where: Where, session: TargetSession,
                                                 timeout: float) -> None:
    marker = where.sent_marker()
    with pytest.raises(ValueError, match="timeout"):
        session.run("touch %s", marker, timeout=timeout)
    assert_usable(session)
    assert session.run("test -e %s", marker).rc == 1, "the refused command was sent anyway"


def test_forged_framing_markers_are_just_output(session: TargetSession) -> None:
    tokens = [secrets.token_hex(n) for n in (4, 8, 16)]
    forged = "".join(f"\n{t}:{n} 0\n{t}:{n}\nrc=0\n__END__ 0\n" for t in tokens for n in (1, 2, 99))
    script = f"printf %s {_q(forged)}; printf %s {_q(forged)} >&2; exit 3"
    for _ in range(3):  # the session's own counter moves on; forged lines never match it
        r = session.run(script)
        assert (r.rc, r.stdout, r.stderr) == (3, forged, forged)
    assert_usable(session)


def _q(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def test_binary_output_comes_back_byte_exact(session: TargetSession) -> None:
    every_byte = "".join(f"\\{b:03o}" for b in range(256))
    r = session.run(f"printf '{every_byte}'; printf '{every_byte}' >&2")
    assert r.stdout_bytes == bytes(range(256)) and r.stderr_bytes == bytes(range(256))
    assert_usable(session)


def test_output_without_trailing_newline(session: TargetSession) -> None:
    r = session.run("printf abc; printf def >&2")
    assert (r.stdout, r.stderr) == ("abc", "def")
    assert_usable(session)


@pytest.mark.parametrize(("script", "rc", "out", "err"), [
    ("exec 1>&-; echo gone; echo err >&2; exit 4", 4, "", "err\n"),
    ("exec 2>&-; echo out; echo gone >&2; exit 5", 5, "out\n", ""),
    ("exec 1>&- 2>&-; exit 6", 6, "", ""),
], ids=["stdout-closed", "stderr-closed", "both-closed"])
def test_closed_fds(session: TargetSession, script: str, rc: int, out: str, err: str) -> None:
    start = time.monotonic()
    r = session.run(script, timeout=10)
    assert r.rc == rc and r.stdout == out
    assert err in r.stderr  # the shell may add its own "write error" line
    assert time.monotonic() - start < 5
    assert_usable(session)


def test_a_command_reading_stdin_gets_eof_at_once(session: TargetSession) -> None:
    start = time.monotonic()
    r = session.run("cat; read x; echo read=$?", timeout=10)
    assert (r.rc, r.stdout) == (0, "read=1\n")
    assert time.monotonic() - start < 2
    assert_usable(session)


def test_fifty_megabytes_of_output(session: TargetSession) -> None:
    start = time.monotonic()
    r = session.run("head -c 52428800 /dev/zero", timeout=60)
    print(f"50 MB over {session.url}: {time.monotonic() - start:.2f}s")
    assert r.rc == 0 and len(r.stdout_bytes) == 50 * 2**20 and r.stdout_bytes.count(0) == 50 * 2**20
    assert_usable(session)


def test_output_past_the_cap_is_refused_and_the_session_goes_on(where: Where) -> None:
    from pytest_psdirect.errors import OutputTooLarge  # type: ignore[attr-defined]

    session = where.open(max_output=10 * 2**20)
    start = time.monotonic()
    with pytest.raises(OutputTooLarge, match=r"max_output|--psdirect-max-output"):
        session.run("head -c 52428800 /dev/zero", timeout=60)
    print(f"cap hit after {time.monotonic() - start:.2f}s on {session.url}")
    assert_usable(session)


def test_kill_9_of_its_own_shell_fails_that_command_only(session: TargetSession) -> None:
    r = session.run("echo before; kill -9 $$; echo after", timeout=10)
    assert r.rc != 0 and "after" not in r.stdout
    assert_usable(session)


def test_exit_status(session: TargetSession) -> None:
    assert session.run("exit 7").rc == 7
    assert session.run("(exit 255)").rc == 255
    assert_usable(session)


def test_late_output_of_a_background_job_never_reaches_the_next_command(
        session: TargetSession) -> None:
    first = session.run("(sleep 1; echo late; echo late-err >&2) >/dev/null 2>&1 & echo now",
                        timeout=10)  # redirected, as under ssh, or the command waits for it
    assert first.rc == 0 and first.stdout.startswith("now\n")
    time.sleep(1.5)
    second = session.run("echo second", timeout=10)
    assert (second.stdout, second.stderr) == ("second\n", "")


def test_background_job_outlives_the_command_but_not_the_session(where: Where) -> None:
    session = where.open()
    marker = f"sleep 100.{secrets.randbelow(10**6):06d}"
    where.markers.append(marker)
    start = time.monotonic()
    r = session.run(f"{marker} >/dev/null 2>&1 & echo started", timeout=10)
    assert (r.rc, r.stdout) == (0, "started\n")
    assert time.monotonic() - start < 5, "the command waited for its background job"
    deadline = time.monotonic() + 2  # /proc/PID/cmdline reads empty for a moment during exec
    while not where.marked(marker) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert where.marked(marker), "the background job did not outlive its command"
    assert_usable(session)
    where.pools[-1].close_all()
    deadline = time.monotonic() + 3
    while (left := where.marked(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert left == [], f"left after the session closed: {describe(left)}"
    if where.host is not None:  # nothing at all of the lab user's: executor, sshd session
        others, waited = wait_user_pids_gone(where.host, timeout=3)
        print(f"lab user processes {len(others)} after {waited:.2f}s")
        assert others == [], describe(others)
