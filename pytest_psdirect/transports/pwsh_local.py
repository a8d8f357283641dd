"""``pwsh://``: a local PowerShell process in server mode (``pwsh -NoLogo -NoProfile -s``).

Used to drive a Hyper-V host the plugin runs on, and anywhere PowerShell is installed next to
pytest. ``?exe=powershell.exe`` (Windows PowerShell 5.1) or ``?exe=/path/to/pwsh`` picks the
executable; the process is this session's, ended when the session closes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
from typing import ClassVar

from ..credentials.secret import scrubbed_environ
from ..errors import ConnectFailed
from ..powershell.engine import PSEngine
from ..powershell.outofproc import OutOfProcEngine
from .executor import ShellPipes
from .powershell import PowerShellTransport

log = logging.getLogger(__name__)
_READ = 65536
INSTALL_HINT = ("install PowerShell 7 (https://learn.microsoft.com/powershell/scripting/install/"
                "installing-powershell; Debian/Ubuntu: the packages.microsoft.com repository, "
                "then apt-get install powershell), or name one with ?exe=/path/to/pwsh or "
                "?exe=powershell.exe")


class _ProcessPipes:
    """ShellPipes over a child process's stdin/stdout/stderr."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc

    def write(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError) as exc:
            raise OSError(f"PowerShell's stdin is closed: {exc}") from None

    def read_stdout(self) -> bytes:
        assert self.proc.stdout is not None
        return os.read(self.proc.stdout.fileno(), _READ)

    def read_stderr(self) -> bytes:
        assert self.proc.stderr is not None
        return os.read(self.proc.stderr.fileno(), _READ)

    def close(self) -> None:
        """Close stdin (PowerShell exits on EOF), wait a little, then kill it."""
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError, ValueError):
                self.proc.stdin.close()
        try:
            self.proc.wait(2.0)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5.0)


def resolve_exe(exe: str) -> str:
    """The executable's path, or ConnectFailed naming how to install PowerShell."""
    path = shutil.which(exe)
    if path is None or not os.access(path, os.X_OK):
        raise ConnectFailed(f"PowerShell executable {exe!r} not found on PATH or not executable",
                            hint=INSTALL_HINT)
    return path


class PwshLocalTransport(PowerShellTransport):
    """A ``pwsh -s`` child process carrying the OutOfProc protocol on its stdio."""

    scheme: ClassVar[str] = "pwsh"

    def _argv(self) -> list[str]:
        exe = self.target.option("exe") or "pwsh"
        try:
            path = resolve_exe(exe)
        except ConnectFailed as exc:
            raise ConnectFailed(exc.message, target=self.target.url, hint=exc.hint) from None
        return [path, "-NoLogo", "-NoProfile", "-s"]

    def _spawn(self, timeout: float) -> ShellPipes:
        argv = self._argv()
        log.debug("%s: starting %s", self.target, argv[0])
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, bufsize=0, env=scrubbed_environ(os.environ),
                                    start_new_session=True)
        except OSError as exc:
            raise ConnectFailed(f"cannot start {argv[0]}: {exc.strerror or exc}",
                                target=self.target.url, hint=INSTALL_HINT) from None
        return _ProcessPipes(proc)

    def _make_engine(self) -> PSEngine:
        return OutOfProcEngine(self._spawn, label=self.target.url)
