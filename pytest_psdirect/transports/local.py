"""``local://``: this machine, through the same command agent as SSH (run by this Python).

Commands run in the current user's login shell (``$SHELL -c``), like ``ssh localhost cmd``.

Example::

    >>> from pytest_psdirect.targets import parse_target
    >>> from pytest_psdirect.settings import Settings
    >>> t = LocalTransport(parse_target("local://"), None, Settings())
    >>> t.open(); t.run("echo hi", timeout=5).stdout; t.close()
    'hi\\n'
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import IO, ClassVar

from ..credentials.secret import scrubbed_environ
from ..errors import CommandTimeout, FileTransferError
from .agentproto import bootstrap_code
from .base import ShellTransport
from .executor import ShellPipes
from .files import atomic_local_file
from .shellproto import Completed

_READ = 65536


class ProcessPipes:
    """ShellPipes over a local child process's stdin/stdout/stderr (``/bin/sh``, the agent, or
    ``podman exec -i``); closing waits 2 s for it to end, then kills its process group."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc
        self._stdin: IO[bytes] = _stream(proc.stdin)
        self._stdout: IO[bytes] = _stream(proc.stdout)
        self._stderr: IO[bytes] = _stream(proc.stderr)

    def write(self, data: bytes) -> None:
        self._stdin.write(data)
        self._stdin.flush()

    def read_stdout(self) -> bytes:
        return os.read(self._stdout.fileno(), _READ)

    def read_stderr(self) -> bytes:
        return os.read(self._stderr.fileno(), _READ)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._stdin.close()
        try:
            self._proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            _kill_group(self._proc.pid)
            self._proc.wait()
        for pipe in (self._stdout, self._stderr):
            pipe.close()


def _stream(pipe: IO[bytes] | None) -> IO[bytes]:
    if pipe is None:  # pragma: no cover - Popen was asked for pipes
        raise RuntimeError("subprocess pipe missing")
    return pipe


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


class LocalTransport(ShellTransport):
    """Runs commands on this machine as the current user."""

    scheme: ClassVar[str] = "local"

    def open(self) -> None:
        self._ensure_runner()

    @property
    def alive(self) -> bool:
        return True

    def _kill_groups(self, groups: list[int]) -> None:
        for group in groups:
            _kill_group(group)

    def _spawn_agent(self, source: bytes) -> ShellPipes:
        proc = subprocess.Popen([sys.executable, "-c", bootstrap_code(len(source))],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True,
                                env=scrubbed_environ(os.environ))  # commands inherit this
        pipes = ProcessPipes(proc)
        pipes.write(source)
        return pipes

    def _spawn_shell(self) -> tuple[ShellPipes, Callable[[int], None]]:
        proc = subprocess.Popen(["/bin/sh"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True,
                                env=scrubbed_environ(os.environ))  # no secret in a child's env
        return ProcessPipes(proc), _kill_group

    def _exec_once(self, cmd: str, timeout: float) -> Completed:
        try:
            shell = os.environ.get("SHELL") or "/bin/sh"
            proc = subprocess.run([shell, "-c", cmd], capture_output=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL, start_new_session=True, check=False,
                                  env=scrubbed_environ(os.environ))
        except subprocess.TimeoutExpired as exc:
            raise CommandTimeout(f"command timed out after {timeout:g}s", target=self.target.url,
                                 command=cmd, timeout=timeout, stdout=exc.stdout or b"",
                                 stderr=exc.stderr or b"") from None
        return Completed(0, proc.returncode, proc.stdout, proc.stderr)

    def put(self, local: str, remote: str) -> None:
        _copy(local, remote, self.target.url)

    def get(self, remote: str, local: str) -> None:
        _copy(remote, local, self.target.url)


def _copy(src: str, dst: str, label: str) -> None:
    try:
        with atomic_local_file(dst) as part:
            shutil.copyfile(src, part)
            shutil.copymode(src, part)
    except OSError as exc:
        raise FileTransferError(f"cannot copy {src} to {dst}: {exc.strerror}", target=label,
                                hint="check that the source exists and the destination folder "
                                     "is writable") from None
