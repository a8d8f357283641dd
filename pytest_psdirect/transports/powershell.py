"""Base of the PowerShell transports (``winrm``, ``pwsh+ssh``, ``pwsh``, later ``vm``): one engine
(a RunspacePool) per session; ``run_ps`` goes straight to it, ``run`` and ``put``/``get`` are
PowerShell scripts run on it with their values passed as parameters.
"""

from __future__ import annotations

import abc
import dataclasses
import time
from collections.abc import Mapping

from ..errors import TargetSpecError, UnsupportedOperation
from ..powershell import files as psfiles
from ..powershell.command import Invocation, build_invocation
from ..powershell.engine import PSEngine
from ..powershell.result import PSResult
from ..results import CommandResult
from ..settings import validate_timeout
from .base import Transport
from .runner import OutputCallback

#: ``target.run(cmd)`` on a PowerShell target: cmd.exe on Windows (``/d /s /c "cmd"`` runs the
#: text between the outer quotes as is), /bin/sh elsewhere; exact rc, stdout and stderr.
RUN_NATIVE = r"""param([string]$Command, [string]$WorkDir)
if ($IsWindows -or $env:OS -eq 'Windows_NT') {
    $psi = [System.Diagnostics.ProcessStartInfo]::new($env:ComSpec, "/d /s /c `"$Command`"")
} else {
    $psi = [System.Diagnostics.ProcessStartInfo]::new('/bin/sh')
    $psi.ArgumentList.Add('-c'); $psi.ArgumentList.Add($Command)
}
$psi.UseShellExecute = $false
$psi.RedirectStandardOutput = $true
$psi.RedirectStandardError = $true
$psi.RedirectStandardInput = $true
if ($WorkDir) { $psi.WorkingDirectory = $WorkDir }
$p = [System.Diagnostics.Process]::Start($psi)
$p.StandardInput.Close()
$out = $p.StandardOutput.ReadToEndAsync()
$err = $p.StandardError.ReadToEndAsync()
$p.WaitForExit()
[pscustomobject]@{ rc = $p.ExitCode; stdout = $out.Result; stderr = $err.Result }
"""


class PowerShellTransport(Transport):
    """A target reached through a PowerShell RunspacePool."""

    _engine: PSEngine | None = None

    @abc.abstractmethod
    def _make_engine(self) -> PSEngine:
        """A new, unopened engine for this target."""

    def open(self) -> None:
        """Open the engine; a URL ``?timeout=`` bounds connecting (as for ssh://)."""
        timeout = self.target.option("timeout")
        if timeout is not None:
            try:
                seconds = validate_timeout(timeout, "?timeout")
            except ValueError as exc:
                raise TargetSpecError(str(exc), target=self.target.url,
                                      hint="write ?timeout=SECONDS, e.g. ?timeout=30") from None
            self.settings = dataclasses.replace(self.settings, connect_timeout=seconds)
        engine = self._make_engine()
        try:
            engine.open(self.settings.connect_timeout)
        except BaseException:
            engine.close()
            raise
        self._engine = engine

    @property
    def alive(self) -> bool:
        return self._engine is not None and self._engine.alive

    def _live_engine(self) -> PSEngine:
        if self._engine is None:
            raise UnsupportedOperation("the PowerShell session is closed", target=self.target.url)
        return self._engine

    def run_ps(self, invocation: Invocation, *, timeout: float) -> PSResult:
        return self._live_engine().invoke(invocation, timeout=timeout)

    def run(self, cmd: str, *, timeout: float, env: Mapping[str, str] | None = None,
            cwd: str | None = None, stream: OutputCallback | None = None) -> CommandResult:
        if env:
            raise UnsupportedOperation("env= is not supported on PowerShell targets yet",
                                       target=self.target.url,
                                       hint="set variables in the command (set A=1 && ...)")
        start = time.perf_counter()
        result = self.run_ps(build_invocation(RUN_NATIVE, (), {"Command": cmd,
                                                              "WorkDir": cwd or ""}),
                             timeout=timeout)
        if result.errors or len(result.output) != 1 or not isinstance(result.output[0], dict):
            raise UnsupportedOperation(
                f"running {cmd!r} through PowerShell failed: "
                + ("; ".join(str(e) for e in result.errors) or repr(result.output)),
                target=self.target.url)
        row = result.output[0]
        out, err = str(row.get("stdout") or ""), str(row.get("stderr") or "")
        if stream is not None:
            stream(1, out.encode())
            stream(2, err.encode())
        return CommandResult(rc=int(row.get("rc", -1)), stdout_bytes=out.encode(),
                             stderr_bytes=err.encode(), duration=time.perf_counter() - start,
                             command=cmd, target=self.target.url)

    def put(self, local: str, remote: str) -> None:
        """Chunked, SHA-256 checked, renamed into place when complete (``powershell/files.py``)."""
        psfiles.put(psfiles.invoker(self.run_ps), local, remote, target=self.target.url,
                    stall=self.settings.connect_timeout, finish=self.settings.command_timeout)

    def get(self, remote: str, local: str) -> None:
        psfiles.get(psfiles.invoker(self.run_ps), remote, local, target=self.target.url,
                    stall=self.settings.connect_timeout, finish=self.settings.command_timeout)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None
