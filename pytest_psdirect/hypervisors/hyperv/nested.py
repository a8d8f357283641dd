"""PowerShell Direct through a Hyper-V host: a :class:`PSEngine` whose pool lives in the VM.

The host session (any PowerShell target: a local ``pwsh``/``powershell.exe`` process, WinRM,
PowerShell over SSH) runs ``New-PSSession -VMName/-VMId -Credential`` once and keeps the result
in a host variable; every invocation is then one ``Invoke-Command -Session`` on the host (one
round trip), so the guest's state persists between calls, as on any other PowerShell target.
The user's script reaches the guest as a string parameter and is made a script block there;
values travel as parameters, never in script text. Files move with ``Copy-Item
-ToSession/-FromSession`` (:mod:`pytest_psdirect.transports.psdirect`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import secrets
import time
from typing import Any, Protocol

from ...credentials.secret import Credential
from ...errors import CredentialError, PSDirectError, SessionBroken
from ...powershell.command import Invocation, build_invocation
from ...powershell.engine import PSEngine
from ...powershell.result import PSResult
from . import templates
from .troubleshoot import classify

log = logging.getLogger(__name__)

#: FullyQualifiedErrorId fragments that mean the kept guest session is gone (VM stopped...)
_BROKEN = ("PSSessionStateBroken", "InvalidSessionState", "PSSessionInvalidState")


class HostSession(Protocol):
    """What the nested engine needs of the host: a PowerShell transport (``open``/``run_ps``)."""

    def open(self) -> None: ...

    def run_ps(self, invocation: Invocation, *, timeout: float) -> PSResult: ...

    @property
    def alive(self) -> bool: ...

    def close(self) -> None: ...


@dataclasses.dataclass(frozen=True)
class VMRef:
    """Which VM: by name (``vm://``) or by id (``vmid://``); or which Windows container
    (``container://``, ``New-PSSession -ContainerId [-RunAsAdministrator]``, no credential)."""

    name: str = ""
    id: str = ""
    container_id: str = ""
    run_as_administrator: bool = False

    def parameters(self) -> dict[str, str | bool]:
        if self.container_id:
            return {"ContainerId": self.container_id,
                    "RunAsAdministrator": self.run_as_administrator}
        return {"VMName": self.name, "VMId": self.id}


def host_invocation(name: str, **values: Any) -> Invocation:
    """Template ``name`` with ``values`` as its parameters."""
    return build_invocation(templates.load(name), (), values)


class NestedPSDirectEngine(PSEngine):
    """A PowerShell Direct session held on a Hyper-V host's PowerShell session."""

    def __init__(self, host: HostSession, vm: VMRef, credential: Credential | None, *,
                 label: str, close_wait: float = 10.0) -> None:
        self.host = host
        self.vm = vm
        self._credential = credential
        self._label = label
        self._close_wait = close_wait
        self._key = secrets.token_hex(8)  # names this session in the host runspace
        self._open = False
        self._broken = False
        #: the host's temporary directory (with its trailing separator), for copies' first hop
        self.host_temp = ""

    @property
    def key(self) -> str:
        return self._key

    def open(self, timeout: float) -> None:
        if self._credential is None and not self.vm.container_id:
            raise CredentialError(
                "a VM needs a credential: PowerShell Direct gives the host no implicit "
                "administrator access to the guest", target=self._label,
                hint="--credential-env PREFIX (PREFIX_USERNAME/PREFIX_PASSWORD of an account in "
                     "the guest) or an inventory credential")
        self.host.open()
        log.debug("%s: New-PSSession on the Hyper-V host", self._label)
        result = self.host.run_ps(host_invocation(
            "vm-open", Key=self._key, Credential=self._credential, **self.vm.parameters()),
            timeout=timeout)
        if result.errors or not result.output:
            if result.errors:
                raise classify(result.errors[0], target=self._label)
            raise SessionBroken("New-PSSession returned no session and no error",
                                target=self._label)
        info = result.output[-1]
        self.host_temp = str(info.get("HostTemp") or "") if isinstance(info, dict) else ""
        self._open = True

    @property
    def alive(self) -> bool:
        return self._open and not self._broken and self.host.alive

    def invoke(self, invocation: Invocation, *, timeout: float) -> PSResult:
        if not self._open:
            raise SessionBroken("the PowerShell Direct session is closed", target=self._label)
        start = time.perf_counter()
        try:
            result = self.host.run_ps(host_invocation(
                "vm-invoke", Key=self._key, Code=invocation.script,
                ArgumentList=list(invocation.args), Parameters=dict(invocation.params)),
                timeout=timeout)
        except PSDirectError as exc:  # a timeout, the host session gone: name the VM target
            exc.target = self._label
            raise
        if any(f in e.fully_qualified_error_id for e in result.errors for f in _BROKEN):
            self._broken = True  # the pool reopens the session in the next test's set-up
        return dataclasses.replace(result, script=invocation.script, target=self._label,
                                   duration=time.perf_counter() - start)

    def host_call(self, name: str, *, timeout: float, **values: Any) -> PSResult:
        """Run host template ``name`` with this session's key (files' hops)."""
        return self.host.run_ps(host_invocation(name, Key=self._key, **values), timeout=timeout)

    def close(self) -> None:
        """``Remove-PSSession`` (bounded), then the host session."""
        try:
            if self._open and self.host.alive:
                with contextlib.suppress(PSDirectError):
                    self.host.run_ps(host_invocation("vm-close", Key=self._key),
                                     timeout=self._close_wait)
        finally:
            self._open = False
            self.host.close()
