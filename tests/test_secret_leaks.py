"""Secret leaks: grep EVERY output channel for the password, over real runs.

Channels: terminal stdout/stderr, JUnit XML (``junit_logging=all``), a DEBUG ``--log-file``, and
``/proc/*/cmdline`` + ``/proc/*/environ`` of every process sampled while the run goes on. Runs:
passing, failing (``--showlocals --full-trace``, the password in a local, a log record and stdout),
erroring (wrong password), interrupted (SIGINT while connecting and while a command runs) and
xdist (``-n 2``). The leak count must be 0, and the masks must show where the secret was.

The only processes allowed to hold the password in their environment are the pytest processes
themselves (the user exported it for ``--credential-env``); the shells and commands they start
must not inherit it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pytest_psdirect.credentials.secret import MASK
from pytest_psdirect.lab.sshlab import SSHLab

PYTHON = os.path.realpath(sys.executable)
LOCAL_SECRET = "loc4l-S3cret-Zq9"  # the password for local:// runs (never sent anywhere)

SUITE = """
import logging

log = logging.getLogger("suite")


def _password(target, pytestconfig):
    cred = pytestconfig.hook.pytest_psdirect_credential(target=target.spec, config=pytestconfig,
                                                        required=True)
    return cred.secret.reveal()


def test_pass(target):
    out = target.run("env; sleep 0.6").stdout
    print(out)
    assert "_PASSWORD=" not in out


def test_fail_with_the_password_everywhere(target, pytestconfig):
    password = _password(target, pytestconfig)  # a plain local: --showlocals shows it
    log.warning("revealed %s", password)
    print("stdout:", password)
    target.run("echo %s >&2", password)
    assert password == "not-it", "the message holds " + password
"""


@dataclass
class ProcSampler:
    """Samples /proc/*/cmdline and /proc/*/environ for the secrets while a run goes on."""

    secrets: list[bytes]
    leaks: list[str] = field(default_factory=list)
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def _scan(self) -> None:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                exe = os.path.realpath(f"/proc/{pid}/exe")
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                environ = Path(f"/proc/{pid}/environ").read_bytes()
            except OSError:
                continue
            for secret in self.secrets:
                if secret in cmdline:
                    self.leaks.append(f"cmdline of {pid} {exe}")
                if secret in environ and exe != PYTHON:  # pytest itself was given it
                    self.leaks.append(f"environ of {pid} {exe}: {cmdline[:80]!r}")
        self.samples += 1

    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            self._scan()

    def __enter__(self) -> ProcSampler:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Channels:
    terminal: str
    junit: str
    log_file: str

    def leaks(self, secrets: list[str]) -> dict[str, int]:
        found = {}
        for name in ("terminal", "junit", "log_file"):
            text = getattr(self, name)
            count = sum(text.count(s) for s in secrets)
            if count:
                found[name] = count
        return found


def _args(tmp: Path, name: str) -> list[str]:
    return ["-p", "no:cacheprovider", "--showlocals", "--full-trace", "-rA", "-o",
            "junit_logging=all", f"--junitxml={tmp / name}.xml", f"--log-file={tmp / name}.log",
            "--log-file-level=DEBUG", "--log-level=DEBUG"]


def _channels(tmp: Path, name: str, out: str, err: str) -> Channels:
    junit, log_file = tmp / f"{name}.xml", tmp / f"{name}.log"
    return Channels(terminal=out + err, junit=junit.read_text() if junit.exists() else "",
                    log_file=log_file.read_text() if log_file.exists() else "")


@pytest.fixture
def secrets_env(monkeypatch: pytest.MonkeyPatch, ssh_lab: SSHLab) -> Iterator[list[str]]:
    monkeypatch.setenv("GOOD_USERNAME", ssh_lab.user)
    monkeypatch.setenv("GOOD_PASSWORD", ssh_lab.password)
    yield [ssh_lab.password, ssh_lab.password[::-1] + "-wrong"]


def _password_host(ssh_lab: SSHLab) -> str:
    assert ssh_lab.state is not None
    return ssh_lab.state.hosts[1].url  # lab2 accepts passwords (lab1 is hardened)


@pytest.mark.parametrize("extra", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_pass_fail_and_wrong_password_leak_nothing(pytester: pytest.Pytester, ssh_lab: SSHLab,
                                                   secrets_env: list[str], extra: list[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(test_suite=SUITE)
    host, tmp = _password_host(ssh_lab), pytester.path
    report: dict[str, object] = {}
    with ProcSampler([s.encode() for s in secrets_env]) as sampler:
        good = pytester.runpytest_subprocess(
            "--hosts", f"{host},local://", "--credential-env", "GOOD", "--ssh-known-hosts",
            str(ssh_lab.known_hosts), *_args(tmp, "good"), *extra)
        monkeypatch.setenv("BAD_USERNAME", ssh_lab.user)
        monkeypatch.setenv("BAD_PASSWORD", secrets_env[1])
        bad = pytester.runpytest_subprocess(
            "--hosts", host, "--credential-env", "BAD", "--ssh-known-hosts",
            str(ssh_lab.known_hosts), *_args(tmp, "bad"), *extra)
    good.assert_outcomes(passed=2, failed=2)
    bad.assert_outcomes(errors=2)
    bad.stdout.fnmatch_lines(["*authentication failed for user*"])
    for name, result in (("good", good), ("bad", bad)):
        channels = _channels(tmp, name, result.stdout.str(), result.stderr.str())
        report[name] = channels.leaks(secrets_env)
        if name == "good":  # the secret was there, masked, in every channel
            assert re.search(r"^password +=? '\*{8}'$", channels.terminal, re.M)
            assert f"the message holds {MASK}" in channels.junit
            # under xdist each worker reopens the same --log-file with mode "w"
            assert f"revealed {MASK}" in channels.log_file or extra
            assert f"stdout: {MASK}" in channels.junit
    report["proc"] = sampler.leaks
    print(f"leak report ({sampler.samples} /proc samples): {report}")
    assert sampler.samples > 5
    assert report == {"good": {}, "bad": {}, "proc": []}


def test_local_commands_do_not_inherit_the_password(pytester: pytest.Pytester,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOC_USERNAME", "me")
    monkeypatch.setenv("LOC_PASSWORD", LOCAL_SECRET)
    monkeypatch.setenv("COPY_OF_IT", f"x{LOCAL_SECRET}x")  # any variable holding the value
    pytester.makepyfile(test_suite=SUITE)
    with ProcSampler([LOCAL_SECRET.encode()]) as sampler:
        result = pytester.runpytest_subprocess("--hosts", "local://", "--credential-env", "LOC",
                                               *_args(pytester.path, "loc"))
    result.assert_outcomes(passed=1, failed=1)
    channels = _channels(pytester.path, "loc", result.stdout.str(), result.stderr.str())
    assert channels.leaks([LOCAL_SECRET]) == {}
    assert "COPY_OF_IT" not in channels.terminal and "HOME=" in channels.junit
    assert sampler.leaks == []


@pytest.mark.parametrize("where", ["connecting", "running"])
def test_interrupted_runs_leak_nothing(pytester: pytest.Pytester, ssh_lab: SSHLab,
                                       secrets_env: list[str], where: str) -> None:
    """SIGINT while paramiko connects (its frame locals hold the password) or a command runs."""
    assert ssh_lab.state is not None
    if where == "connecting":  # an address of the lab's subnet with no host: ARP takes ~3 s
        hosts, suite = f"ssh://{ssh_lab.user}@{ssh_lab.state.subnet}.250", "def test_x(target): pass\n"
    else:
        hosts, suite = _password_host(ssh_lab), "def test_x(target):\n    target.run('sleep 20')\n"
    pytester.makepyfile(test_suite=suite)
    cmd = [sys.executable, "-m", "pytest", "--hosts", hosts, "--credential-env", "GOOD",
           "--ssh-known-hosts", str(ssh_lab.known_hosts), "--psdirect-connect-timeout", "15",
           *_args(pytester.path, "int"), "test_suite.py"]
    with ProcSampler([s.encode() for s in secrets_env]) as sampler:
        proc = subprocess.Popen(cmd, cwd=pytester.path, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        time.sleep(2.0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out[-2000:] + err[-2000:]
    assert "KeyboardInterrupt" in out + err
    if where == "connecting":  # the trace went through paramiko's connect with its locals
        assert re.search(r"\bpassword += '\*{8}'", out), out
    channels = _channels(pytester.path, "int", out, err)
    assert channels.leaks(secrets_env) == {}
    assert sampler.leaks == []
