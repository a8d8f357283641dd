"""``psdirect shell`` driven through a real pseudo-terminal (pexpect), on ``local://`` and on a
real sshd host of the lab: prompt, output, exit status in the prompt, ``cd``/``export`` carried
over, Ctrl-C ending the remote command (its process is gone) but not the shell, ``exit``."""

from __future__ import annotations

import os
import re
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pexpect
import pytest

from conftest import lab_host, reset_connections, user_pids
from pytest_psdirect.lab import procs
from pytest_psdirect.lab.sshlab import SSHLab
from pytest_psdirect.repl.state import ShellState

PSDIRECT = [sys.executable, "-m", "pytest_psdirect.cli"]


def _eventually(check: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def spawn_shell(args: list[str], tmp: Path) -> pexpect.spawn:
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "TERM": "dumb",
           "SHELL": "/bin/sh", "XDG_STATE_HOME": str(home / "state")}
    child = pexpect.spawn(PSDIRECT[0], [*PSDIRECT[1:], "shell", *args], env=env,
                          encoding="utf-8", timeout=20, cwd=str(home),
                          dimensions=(40, 200))
    child.logfile_read = sys.stdout
    return child


def walk_through(child: pexpect.spawn, name: str, running: Callable[[str], list[int]],
                 scratch: str, cut: Callable[[], None] | None = None) -> None:
    """The session every test goes through; ``running(marker)`` lists remote PIDs; ``cut``
    drops the connection before the last command (the state is the console's: it survives)."""
    prompt = re.escape(f"[{name}] ")
    child.expect(prompt + r".* \$ ")
    child.sendline("echo hello from $(hostname)")
    child.expect(r"hello from \S+")
    child.expect(prompt + r".* \$ ")
    quoted = shlex.quote(scratch)
    child.sendline(f"mkdir -p {quoted} && cd {quoted} && export PSD_FOO=bar42")
    child.expect(prompt + re.escape(scratch) + r" \$ ")
    child.sendline("pwd; echo foo=$PSD_FOO")
    child.expect(re.escape(scratch) + r"\r\nfoo=bar42")
    child.expect(prompt + re.escape(scratch) + r" \$ ")
    child.sendline("sh -c 'exit 7'")
    child.expect(prompt + re.escape(scratch) + r" \[7\] \$ ")
    child.sendline("sleep 1004.7; echo never")
    assert _eventually(lambda: bool(running("sleep 1004.7"))), "the command did not start"
    child.sendintr()
    child.expect(prompt + re.escape(scratch) + r" \[130\] \$ ")
    assert _eventually(lambda: not running("sleep 1004.7")), "Ctrl-C left the process running"
    assert "\nnever" not in (child.before or "")  # the echo of the line itself aside
    if cut is not None:
        cut()
    child.sendline("echo still $PSD_FOO; pwd")  # the shell and its state survived
    child.expect("still bar42\r\n" + re.escape(scratch))
    child.expect(prompt)
    child.sendline("exit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_shell_on_local(tmp_path: Path) -> None:
    child = spawn_shell(["local://"], tmp_path)
    walk_through(child, "local://", procs.cmdline_pids, str(tmp_path / "sub dir"))
    history = (tmp_path / "home" / "state" / "psdirect" / "history").read_text()
    assert "echo hello from $(hostname)" in history


def test_shell_on_an_ssh_lab_host_by_inventory_name(ssh_lab: SSHLab, tmp_path: Path) -> None:
    host = lab_host(ssh_lab, 1)

    def running(marker: str) -> list[int]:
        return [p for p in user_pids(host) if marker in procs.cmdline(p)]

    child = spawn_shell(["--inventory", str(ssh_lab.inventory_file), host.name], tmp_path)
    walk_through(child, host.name, running, "/tmp/psd shell test",
                 cut=lambda: reset_connections(host))


def test_ctrl_d_leaves_and_a_bad_target_is_one_line(tmp_path: Path) -> None:
    child = spawn_shell(["local://"], tmp_path)
    child.expect(r"\$ ")
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    child = spawn_shell(["nosuchname"], tmp_path)
    child.expect("neither an inventory name nor a URL")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 2


# ---- the sans-IO part ----------------------------------------------------------------------
@pytest.mark.parametrize("cut", [1, 2, 3, 5, 7, 100])
def test_the_trailer_never_reaches_the_terminal_however_output_is_chunked(cut: int) -> None:
    state = ShellState(token="<T0K>")
    data = b"a<T0<T0K>/x\x00A=1\x00"
    split = state.splitter()
    shown = b"".join(split.feed(data[i:i + cut]) for i in range(0, len(data), cut))
    assert shown + split.rest() == b"a<T0"
    state.update(split.finish())
    assert state.cwd == "/x" and state.env == {"A": "1"}


def test_unset_variables_stay_unset() -> None:
    state = ShellState(token="T")
    state.update(b"/\x00HOME=/root\x00A=1\x00")  # the fresh shell's environment
    state.update(b"/tmp\x00HOME=/root\x00B=2\x00")  # after `unset A; export B=2`
    assert state.extra_env() == {"B": "2"}
    assert state.wrap("ls").startswith("unset A; eval ls\n")

