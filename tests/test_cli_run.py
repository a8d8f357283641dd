"""``psdirect run``: the plugin's target/credential/host-key options, output streamed as it
arrives, the remote status passed through and psdirect's own errors on 255.

``TargetSession.run(..., stream=cb)`` is the lead's; until it lands, these tests give the session
a ``run`` that accepts ``stream`` (a fake, or the real ``run`` followed by one chunk per stream).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pytest_psdirect.cli import ERROR_EXIT, INTERRUPTED_EXIT, main
from pytest_psdirect.lab.sshlab import SSHLab
from pytest_psdirect.results import CommandResult
from pytest_psdirect.sessions import TargetSession

Stream = Callable[[int, bytes], None]


def test_streams_as_it_arrives_and_passes_the_status(monkeypatch: pytest.MonkeyPatch,
                                                      capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    seen: dict[str, Any] = {}

    def fake_run(self: TargetSession, cmd: str, *, timeout: float | None = None,
                 stream: Stream) -> CommandResult:
        seen.update(cmd=cmd, timeout=timeout, url=self.url)
        stream(1, b"first\n")
        seen["after_first"] = capfdbinary.readouterr()  # already written: not held back
        stream(2, b"oops\n")
        stream(1, b"second\n")
        return CommandResult(3, b"first\nsecond\n", b"oops\n", 0.1)

    monkeypatch.setattr(TargetSession, "run", fake_run, raising=False)
    code = main(["run", "--psdirect-command-timeout", "7", "local://", "--", "echo", "a b"])
    out, err = capfdbinary.readouterr()
    assert code == 3  # the remote status, untouched
    assert seen["after_first"].out == b"first\n"
    assert (out, err) == (b"second\n", b"oops\n")  # each chunk once, never again at the end
    assert (seen["cmd"], seen["timeout"], seen["url"]) == ("echo a b", 7.0, "local://")


@pytest.mark.parametrize(("argv", "message"), [
    (["run", "ftp://x", "true"], "unknown scheme 'ftp'"),
    (["run", "qemu://vm1?dir=/nonexistent", "true"], "no QEMU VM there: /nonexistent/vm1/qga.sock"),
    (["run", "web01", "true"], "'web01' is neither an inventory name nor a URL (inventory names: none"),
    (["run", "web01", "--", "uname", "--inventory", "x.toml"], "put psdirect's options before --"),
    (["run", "--ssh-key", "/no/key", "local://", "true"], "--ssh-key /no/key: no such file"),
    (["run", "--ssh-known-hosts", "/no/kh", "local://", "true"], "--ssh-known-hosts /no/kh: no such"),
    (["run", "--psdirect-command-timeout", "nan", "local://", "true"], "'nan' must be a finite"),
    (["run", "--psdirect-max-output", "lots", "local://", "true"], "'lots' is not a size"),
    (["run", "--inventory", "/no/inv.toml", "lab1", "true"], "cannot read inventory /no/inv.toml"),
    (["run", "--credential-env", "NOPE_X", "local://", "true"], "NOPE_X_USERNAME, NOPE_X_PASSWORD"),
    (["run", "--bogus", "local://", "--", "true"], "unrecognized arguments: --bogus"),
])
def test_own_errors_exit_255(argv: list[str], message: str,
                             capfd: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    assert code == ERROR_EXIT
    assert message in capfd.readouterr().err


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch: pytest.MonkeyPatch,
                                         capfd: pytest.CaptureFixture[str]) -> None:
    def interrupted(self: TargetSession, cmd: str, **kwargs: Any) -> CommandResult:
        raise KeyboardInterrupt

    monkeypatch.setattr(TargetSession, "run", interrupted)
    assert main(["run", "local://", "--", "sleep", "60"]) == INTERRUPTED_EXIT
    err = capfd.readouterr().err
    assert err == "psdirect: interrupted\n"  # no traceback


def _real_run_then_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    """Until stream= lands: the real run, then its output as one chunk per stream."""
    real_run = TargetSession.run

    def run(self: TargetSession, cmd: str, *, timeout: float | None = None,
            stream: Stream) -> CommandResult:
        result = real_run(self, cmd, timeout=timeout)
        stream(1, result.stdout_bytes)
        stream(2, result.stderr_bytes)
        return result

    monkeypatch.setattr(TargetSession, "run", run)


def test_inventory_names_over_the_lab(ssh_lab: SSHLab, monkeypatch: pytest.MonkeyPatch,
                                      capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    _real_run_then_stream(monkeypatch)
    code = main(["run", "--inventory", str(ssh_lab.inventory_file), "lab2", "--",
                 "id -un; echo to-stderr >&2; exit 7"])
    out, err = capfdbinary.readouterr()
    assert (code, out, err) == (7, f"{ssh_lab.user}\n".encode(), b"to-stderr\n")


def test_credential_env_and_host_key_options_over_the_lab(
        ssh_lab: SSHLab, monkeypatch: pytest.MonkeyPatch, tmp_path: Any,
        capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    """Password login (no key anywhere), host key checked against --ssh-known-hosts."""
    assert ssh_lab.state is not None
    _real_run_then_stream(monkeypatch)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.setenv("LABCLI_USERNAME", ssh_lab.user)
    monkeypatch.setenv("LABCLI_PASSWORD", ssh_lab.password)
    host = ssh_lab.state.hosts[1]
    code = main(["run", "--credential-env", "LABCLI", "--ssh-known-hosts", str(ssh_lab.known_hosts),
                 f"ssh://{host.address}", "--", "id", "-un"])
    assert (code, capfdbinary.readouterr().out) == (0, f"{ssh_lab.user}\n".encode())
    code = main(["run", "--credential-env", "LABCLI", f"ssh://{host.address}", "--", "true"])
    assert code == ERROR_EXIT  # unknown host key: psdirect's error, not the command's
    assert b"not in known_hosts" in capfdbinary.readouterr().err


def test_refused_port_exits_255(ssh_lab: SSHLab, capfd: pytest.CaptureFixture[str]) -> None:
    assert ssh_lab.state is not None
    code = main(["run", "--psdirect-connect-timeout", "5",
                 f"ssh://{ssh_lab.user}@{ssh_lab.state.hosts[1].address}:2", "--", "true"])
    assert code == ERROR_EXIT
    assert "connection refused" in capfd.readouterr().err
