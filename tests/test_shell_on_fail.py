"""``--psdirect-shell-on-fail`` through pytester: a real pytest in a real pseudo-terminal drops
into the failing test's own session before teardown; in CI, without a terminal and under xdist
it prints one line instead."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pexpect
import pytest

SUITE = """
import pathlib
import pytest

@pytest.fixture
def teardown_mark():
    yield
    pathlib.Path({mark!r}).write_text("torn down")

def test_fails(target, teardown_mark):
    pathlib.Path({session!r}).write_text(target.check_output("echo $PSDIRECT_SESSION"))
    assert False, "deliberate"

def test_passes(target):
    pass
"""


def _suite(pytester: pytest.Pytester) -> tuple[Path, Path]:
    session, mark = pytester.path / "session.txt", pytester.path / "torn-down.txt"
    pytester.makepyfile(test_kof=SUITE.format(session=str(session), mark=str(mark)))
    return session, mark


def test_a_failing_test_opens_a_shell_in_its_own_session_before_teardown(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    session, mark = _suite(pytester)
    child = pytester.spawn_pytest("-p no:cacheprovider --hosts local:// "
                                  "--psdirect-shell-on-fail", expect_timeout=30)
    child.expect(re.escape("test_fails[local://] failed; shell on local://"))
    child.expect(re.escape("[local://] ") + r".*\$ ")
    child.sendline(f"echo S=$PSDIRECT_SESSION; test -e {shlex.quote(str(mark))}; echo torn=$?")
    child.expect(r"S=(\w+)\r\ntorn=1")  # not torn down yet
    assert child.match.group(1).decode() == session.read_text().strip()  # the test's own session
    child.sendline("exit")
    child.expect(r"1 failed, 1 passed")
    child.expect(pexpect.EOF)
    assert mark.read_text() == "torn down"


@pytest.mark.parametrize(("env", "args", "why"), [
    ({"CI": "true"}, [], "CI is set"),
    ({}, [], "stdin/stdout is not a terminal"),
])
def test_no_shell_where_nobody_can_answer(pytester: pytest.Pytester,
                                          monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
                                          args: list[str], why: str) -> None:
    monkeypatch.delenv("CI", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    _suite(pytester)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--hosts", "local://",
                                           "--psdirect-shell-on-fail", *args, timeout=60)
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines([f"psdirect: not opening a shell on local:// for "
                                 f"test_kof.py::test_fails*: {why}"])


def test_under_xdist_it_says_so_up_front(pytester: pytest.Pytester) -> None:
    _suite(pytester)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--hosts", "local://",
                                           "--psdirect-shell-on-fail", "-n", "1", timeout=60)
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["psdirect: --psdirect-shell-on-fail is off under xdist*"])
