"""The session API on local:// (same executor as SSH): isolation, state opt-in, timeouts, files."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_psdirect import (
    CommandFailed,
    CommandTimeout,
    SessionPool,
    Settings,
    TargetSession,
    TransportRegistry,
    parse_target,
)


@pytest.fixture
def local() -> Iterator[TargetSession]:
    pool = SessionPool(TransportRegistry(), Settings(command_timeout=10), lambda t, r: None)
    yield pool.get(parse_target("local://"))
    pool.close_all()


def test_exact_rc_stdout_stderr(local: TargetSession) -> None:
    r = local.run("printf 'no newline'; printf 'e1\\ne2' >&2; exit 7")
    assert (r.rc, r.stdout, r.stderr) == (7, "no newline", "e1\ne2")
    assert r.duration > 0


def test_args_are_quoted(local: TargetSession) -> None:
    assert local.run("printf %s", "$(id) ; `x` 'q'").stdout == "$(id) ; `x` 'q'"


def test_each_run_is_isolated(local: TargetSession) -> None:
    local.run("cd /; export LEAK=1; LEAK2=2")
    r = local.run("pwd; echo ${LEAK:-none} ${LEAK2:-none}")
    assert r.stdout == f"{os.getcwd()}\nnone none\n"


def test_exit_in_a_command_does_not_end_the_session(local: TargetSession) -> None:
    assert local.run("exit 3").rc == 3
    assert local.run("echo alive").stdout == "alive\n"


def test_stdin_is_empty_and_not_the_executor_script(local: TargetSession) -> None:
    assert local.run("cat; echo done").stdout == "done\n"


def test_env_and_cwd(local: TargetSession, tmp_path: Path) -> None:
    r = local.run('pwd; printf "%s" "$V"', env={"V": "a 'b' $c"}, cwd=str(tmp_path))
    assert r.stdout == f"{tmp_path}\na 'b' $c"


def test_stateful_shell_is_opt_in(local: TargetSession) -> None:
    with local.shell() as sh:
        sh.run("cd /etc && X=42")
        assert sh.run("pwd; echo $X").stdout == "/etc\n42\n"
        assert sh.run("if then").rc == 2  # a syntax error does not kill the shell
        assert sh.run("echo $X").stdout == "42\n"
    assert local.run("echo ${X:-unset}").stdout == "unset\n"


def test_large_output_on_both_streams(local: TargetSession) -> None:
    r = local.run("head -c 3000000 /dev/zero; head -c 2000000 /dev/zero >&2")
    assert (len(r.stdout_bytes), len(r.stderr_bytes)) == (3_000_000, 2_000_000)


def test_binary_output_is_exact(local: TargetSession) -> None:
    assert local.run("printf '\\000\\377\\n\\n'").stdout_bytes == b"\x00\xff\n\n"


def test_timeout_kills_the_command_and_the_session_recovers(local: TargetSession) -> None:
    marker = "sleep 31.4159"
    with pytest.raises(CommandTimeout) as info:
        local.run(f"echo started; {marker}", timeout=0.3)
    assert info.value.stdout == b"started\n"
    assert "timed out after 0.3s" in str(info.value)
    left = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout
    assert left == "", f"the timed-out command survived: {left}"
    assert local.run("echo back").stdout == "back\n"


def test_check_and_run_expect(local: TargetSession) -> None:
    assert local.run_expect([0, 1], "exit 1").rc == 1
    with pytest.raises(CommandFailed, match=r"exited 2, expected \[0, 1\]") as info:
        local.run_expect([0, 1], "echo oops >&2; exit 2")
    assert "oops" in str(info.value) and info.value.rc == 2
    with pytest.raises(CommandFailed, match="exited 5"):
        local.run("exit 5", check=True)
    assert local.check_output("echo hi") == "hi"


def test_put_and_get(local: TargetSession, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.write_bytes(b"payload\x00")
    local.put(str(src), str(tmp_path / "remote"))
    local.get(str(tmp_path / "remote"), str(tmp_path / "back"))
    assert (tmp_path / "back").read_bytes() == b"payload\x00"


def test_testinfra_modules(local: TargetSession) -> None:
    host = local.testinfra
    assert host.file("/etc/passwd").user == "root"
    assert host.user("root").uid == 0
    assert host.run("echo %s", "x y").stdout == "x y\n"


def test_run_ps_is_refused_clearly(local: TargetSession) -> None:
    from pytest_psdirect import UnsupportedOperation

    with pytest.raises(UnsupportedOperation, match="run no PowerShell"):
        local.run_ps("Get-Process")
