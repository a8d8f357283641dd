"""``psdirect doctor``: Microsoft's PowerShell Direct troubleshooting list, run as checks in order.

Each step says what it found and, when it fails, the documented cause and the fix; the first
failure stops the walk (later steps depend on it):

1. the Hyper-V host's PowerShell session opens (``--hyperv-host`` or this machine);
2. the host supports PowerShell Direct (Windows build 10240+, PowerShell 5+, ``-VMName``);
3. the VM is visible (you are a Hyper-V administrator and it exists: ``Get-VM``);
4. the VM is running;
5. the guest's heartbeat integration service is OK (the guest OS has started);
6. ``New-PSSession -VMName -Credential`` opens (credential valid, ``vmicvmsession`` answering);
7. a command runs in the guest.

Example::

    $ psdirect doctor vm://web01 --hyperv-host hv01 --credential-env VM
    [ OK ] host session: winrm://hv01
    [ OK ] PowerShell Direct on the host: Windows build 20348, PowerShell 5
    [FAIL] VM running: web01 is Off -- start it (Start-VM web01, or pytest --vm-start)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ...credentials.secret import Credential
from ...errors import PSDirectError
from ...powershell.command import Invocation, build_invocation
from ...powershell.result import PSResult
from ...settings import Settings
from ...targets import Target
from ...transports.powershell import PowerShellTransport
from ...transports.psdirect import PSDirectTransport, vm_ref
from .nested import host_invocation

MIN_BUILD = 10240  # Windows 10 / Server 2016: the first builds with PowerShell Direct


@dataclass(frozen=True)
class Finding:
    """One step's outcome: ``ok``, what was found, and the fix when it failed."""

    step: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        mark = "[ OK ]" if self.ok else "[FAIL]"
        return f"{mark} {self.step}: {self.detail}" + (f" -- {self.fix}" if self.fix else "")


class Doctor:
    """Walks the checks for one ``vm://``/``vmid://`` target; ``report`` sees each finding."""

    def __init__(self, target: Target, credential: Credential | None, settings: Settings,
                 report: Callable[[Finding], None]) -> None:
        self.transport = PSDirectTransport(target, credential, settings)
        self.target = target
        self.settings = settings
        self.report = report
        self.findings: list[Finding] = []

    def _note(self, step: str, ok: bool, detail: str, fix: str = "") -> bool:
        finding = Finding(step, ok, detail, fix)
        self.findings.append(finding)
        self.report(finding)
        return ok

    def run(self) -> bool:
        """True when every check passed."""
        host = self._host()
        if host is None:
            return False
        try:
            return self._host_checks(host) and self._guest_checks()
        finally:
            host.close()

    def _host(self) -> PowerShellTransport | None:
        try:
            host = self.transport._host_transport()
            host.open()
        except PSDirectError as exc:
            self._note("host session", False, exc.message, exc.hint or "check --hyperv-host")
            return None
        self._note("host session", True, host.target.url)
        return host

    def _call(self, host: PowerShellTransport, name: str, **values: str) -> PSResult:
        return host.run_ps(host_invocation(name, **values), timeout=self.settings.connect_timeout)

    def _host_checks(self, host: PowerShellTransport) -> bool:
        found = self._call(host, "doctor-host")
        info = found.output[0] if found.output and isinstance(found.output[0], dict) else {}
        build, major = int(info.get("OSBuild") or 0), int(info.get("PSMajor") or 0)
        if not info.get("HasVMName") or build < MIN_BUILD or major < 5:
            return self._note(
                "PowerShell Direct on the host", False,
                f"Windows build {build}, PowerShell {major}, -VMName "
                f"{'present' if info.get('HasVMName') else 'missing'}",
                "PowerShell Direct needs a Windows 10 / Server 2016 host or later and PowerShell "
                "5+ ([System.Environment]::OSVersion.Version, $PSVersionTable.PSVersion)")
        self._note("PowerShell Direct on the host", True,
                   f"Windows build {build}, PowerShell {major}")
        params = {k: str(v) for k, v in vm_ref(self.target).parameters().items()}
        vm = self._call(host, "doctor-vm", **params)
        row = vm.output[0] if vm.output and isinstance(vm.output[0], dict) else None
        if row is None:
            error = vm.errors[0].message if vm.errors else "Get-VM returned nothing"
            return self._note("VM visible", False, error,
                              "you are not a Hyper-V administrator, or there is no such VM: "
                              "Get-VM lists the VMs this account can see")
        self._note("VM visible", True, f"{row.get('Name')} ({row.get('Id')})")
        if row.get("State") != "Running":
            return self._note("VM running", False, f"{row.get('Name')} is {row.get('State')}",
                              f"start it (Start-VM -Name '{row.get('Name')}', or pytest "
                              "--vm-start)")
        self._note("VM running", True, "Running")
        if row.get("Heartbeat") not in ("OK", "Ok"):
            return self._note("guest heartbeat", False, row.get("Heartbeat") or "no answer",
                              "the guest OS has not started (booting, or waiting for input at "
                              "boot); check it in VMConnect")
        return self._note("guest heartbeat", True, "OK")

    def _guest_checks(self) -> bool:
        try:
            self.transport.open()
        except PSDirectError as exc:
            return self._note("PowerShell Direct session", False,
                              f"{type(exc).__name__}: {exc.message}", exc.hint)
        try:
            self._note("PowerShell Direct session", True, "New-PSSession opened")
            r = self.transport.run_ps(host_probe(), timeout=self.settings.connect_timeout)
            if r.errors or not r.output:
                why = r.errors[0].message if r.errors else "no output"
                return self._note("command in the guest", False, why,
                                  "Restart-Service -Name vmicvmsession in the guest (VMConnect)")
            who = r.output[0]
            detail = (f"{who.get('UserName')} on {who.get('ComputerName')}"
                      if isinstance(who, dict) else str(who))
            return self._note("command in the guest", True, detail)
        finally:
            self.transport.close()


def host_probe() -> Invocation:
    """What the last step runs in the guest: who and where we are."""
    return build_invocation("# psdirect:doctor-guest\n[pscustomobject]@{ ComputerName = "
                            "$env:COMPUTERNAME; UserName = [Environment]::UserName }", (), {})
