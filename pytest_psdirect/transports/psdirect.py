"""``vm://NAME`` and ``vmid://GUID``: PowerShell Direct into a Hyper-V VM.

Route: through a PowerShell session to the Hyper-V host (``?host=`` / ``--hyperv-host``: a
``winrm://``, ``pwsh+ssh://`` or ``pwsh://`` URL, or a bare name meaning WinRM; none: a local
``pwsh``, for pytest running on the host itself), which keeps ``New-PSSession -VMName/-VMId`` for
the whole run (:mod:`pytest_psdirect.hypervisors.hyperv.nested`). The native AF_HYPERV route
plugs in at :meth:`PSDirectTransport._native_engine` (``?route=native|nested|auto``).

A credential is always required: PowerShell Direct gives the host no implicit admin in the guest.
``put``/``get`` take two hops: our chunked, hashed copy to a temporary file on the host, then
``Copy-Item -ToSession/-FromSession`` (hashed in the guest); temporary files are removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
from pathlib import Path
from typing import ClassVar

from ..errors import ConnectFailed, FileTransferError, PSDirectError, TargetSpecError
from ..hypervisors.hyperv.nested import NestedPSDirectEngine, VMRef, host_invocation
from ..powershell import files as psfiles
from ..powershell.engine import PSEngine
from ..targets import Target, parse_target
from .hvsocket_io import NativePSDirect, native_available, require_native
from .powershell import PowerShellTransport

log = logging.getLogger(__name__)
HOST_SCHEMES = ("winrm", "pwsh+ssh", "pwsh")
ROUTES = ("auto", "nested", "native")


def hyperv_host_target(spec: str | None) -> Target:
    """The Hyper-V host as a PowerShell target: a URL, a bare ``[user@]name`` (WinRM), or None
    (a local ``pwsh://``).

    >>> hyperv_host_target("hv01").url, hyperv_host_target(None).url
    ('winrm://hv01', 'pwsh://')
    >>> hyperv_host_target("pwsh+ssh://admin@hv01").url
    'pwsh+ssh://admin@hv01'
    """
    if not spec:
        return parse_target("pwsh://")
    target = parse_target(spec if "://" in spec else f"winrm://{spec}")
    if target.scheme not in HOST_SCHEMES:
        raise TargetSpecError(f"Hyper-V host {spec!r} is a {target.scheme}:// target",
                              hint="reach the host with winrm://, pwsh+ssh:// or pwsh:// "
                                   "(a bare name means WinRM)")
    return target


def vm_ref(target: Target) -> VMRef:
    """Which VM or container a ``vm://``, ``vmid://`` or ``container://`` target names."""
    if target.scheme == "container":
        return VMRef(container_id=target.host,
                     run_as_administrator=target.flag("run_as_administrator"))
    return VMRef(id=target.host) if target.scheme == "vmid" else VMRef(name=target.vm_name)


class PSDirectTransport(PowerShellTransport):
    """A PowerShell session inside a Hyper-V VM."""

    scheme: ClassVar[str] = "vm"
    credential_required: ClassVar[bool] = True

    def _host_transport(self) -> PowerShellTransport:
        from ..credentials.providers import resolve_reference
        from . import TransportRegistry

        host = hyperv_host_target(self.target.option("host"))
        ref = self.target.option("host_credential")
        credential = resolve_reference(ref, Path.cwd()) if ref else None
        cls = TransportRegistry().get(host.scheme)
        transport = cls(host, credential, self.settings)
        assert isinstance(transport, PowerShellTransport)
        return transport

    def open(self) -> None:
        """Open the route (``?timeout=`` bounds connecting: PowerShellTransport.open)."""
        try:
            super().open()
        except ConnectFailed as exc:
            if self.target.option("host") or type(exc) is not ConnectFailed:
                raise
            raise ConnectFailed(
                f"no Hyper-V host named, and this machine's PowerShell did not start: {exc.message}",
                target=self.target.url,
                hint="name the VM's Hyper-V host with --hyperv-host HOST (or ?host=winrm://HOST); "
                     "without one, pytest must run on the Hyper-V host itself") from None

    def _native_engine(self) -> PSEngine | None:
        """Native PowerShell Direct (AF_HYPERV, Windows host, Python >= 3.12), or None for the
        nested route. ``?route=native`` insists (an error says why it cannot be used here);
        ``auto`` takes it for ``vmid://`` targets with no ``?host=`` when the socket family is
        available (``vm://NAME`` stays nested: the broker wants the VM's id)."""
        route = self.target.option("route") or "auto"
        if route not in ROUTES:
            raise TargetSpecError(f"?route={route!r} is not one of {', '.join(ROUTES)}",
                                  target=self.target.url)
        if route == "nested" or (route == "auto" and (
                self.target.option("host") or self.target.scheme != "vmid"
                or not native_available())):
            return None
        if self.target.scheme != "vmid":
            raise TargetSpecError("the native route needs the VM's id", target=self.target.url,
                                  hint="use vmid://GUID ((Get-VM -Name NAME).Id on the host)")
        require_native()
        assert self.credential is not None  # credential_required: the pool resolved one
        return NativePSDirect(self.target.host, self.credential, self.settings,
                              label=self.target.url).engine()

    def _make_engine(self) -> PSEngine:
        native = self._native_engine()
        if native is not None:
            return native
        return NestedPSDirectEngine(self._host_transport(), vm_ref(self.target), self.credential,
                                    label=self.target.url)

    def _nested(self) -> NestedPSDirectEngine | None:
        engine = self._live_engine()
        return engine if isinstance(engine, NestedPSDirectEngine) else None

    # -- files: two hops through the host ----------------------------------------------------
    def _host_path(self, engine: NestedPSDirectEngine) -> str:
        if not engine.host_temp:
            raise FileTransferError("the Hyper-V host did not say where its temporary directory is",
                                    target=self.target.url)
        return f"{engine.host_temp}psdirect-{secrets.token_hex(8)}.tmp"

    def put(self, local: str, remote: str) -> None:
        engine = self._nested()
        if engine is None:
            super().put(local, remote)
            return
        host_path, what = self._host_path(engine), f"{local} -> {remote}"
        host_invoke = psfiles.invoker(engine.host.run_ps)
        try:
            psfiles.put(host_invoke, local, host_path, target=self.target.url,
                        stall=self.settings.connect_timeout, finish=self.settings.command_timeout)
            digest = _sha256(local)
            result = engine.host_call("vm-copy-to", timeout=self.settings.command_timeout,
                                      HostPath=host_path, GuestPath=remote, Sha256=digest,
                                      Token=secrets.token_hex(4))
        except PSDirectError as exc:
            self._remove_on_host(engine, host_path)
            raise FileTransferError(f"copy {what} failed: {exc.message}", target=self.target.url,
                                    hint=exc.hint) from None
        if result.errors:
            self._remove_on_host(engine, host_path)
            raise FileTransferError(f"copy {what} into the VM failed: {result.errors[0].message}",
                                    target=self.target.url,
                                    hint="check the guest path and its permissions")

    def get(self, remote: str, local: str) -> None:
        engine = self._nested()
        if engine is None:
            super().get(remote, local)
            return
        host_path, what = self._host_path(engine), f"{remote} -> {local}"
        part = f"{local}.psdirect-{secrets.token_hex(4)}.part"
        try:
            result = engine.host_call("vm-copy-from", timeout=self.settings.command_timeout,
                                      GuestPath=remote, HostPath=host_path)
            if result.errors or not result.output:
                raise FileTransferError(
                    f"copy {what} out of the VM failed: "
                    + (result.errors[0].message if result.errors else "no hash came back"),
                    target=self.target.url, hint="check the guest path and its permissions")
            guest_sha = str(result.output[-1]["Sha256"])
            psfiles.get(psfiles.invoker(engine.host.run_ps), host_path, part,
                        target=self.target.url, stall=self.settings.connect_timeout,
                        finish=self.settings.command_timeout)
            if _sha256(part) != guest_sha:
                raise FileTransferError(f"copy {what} failed: SHA-256 differs from the VM's "
                                        f"{guest_sha}", target=self.target.url,
                                        hint="is something writing the file in the VM?")
            os.replace(part, local)
        except OSError as exc:
            raise FileTransferError(f"copy {what} failed: {exc.strerror or exc}",
                                    target=self.target.url,
                                    hint="check the local path and its permissions") from None
        finally:
            with contextlib.suppress(OSError):
                os.unlink(part)
            self._remove_on_host(engine, host_path)

    def _remove_on_host(self, engine: NestedPSDirectEngine, path: str) -> None:
        with contextlib.suppress(PSDirectError):
            engine.host.run_ps(host_invocation("host-remove", Path=path),
                               timeout=self.settings.connect_timeout)


class PSDirectIdTransport(PSDirectTransport):
    """``vmid://GUID``: the same, naming the VM by its id (``-VMId``)."""

    scheme: ClassVar[str] = "vmid"


class WindowsContainerTransport(PSDirectTransport):
    """``container://ID``: a Windows container on a container host, as ``Invoke-Command
    -ContainerId`` reaches it: ``New-PSSession -ContainerId ID`` on the host session, kept for
    the run, ``?run_as_administrator=1`` for ``-RunAsAdministrator``. No credential (the
    ContainerId parameter set takes none). Options: ``host``, ``host_credential``,
    ``run_as_administrator``, ``timeout``."""

    scheme: ClassVar[str] = "container"
    credential_required: ClassVar[bool] = False
    _OPTIONS: ClassVar[tuple[str, ...]] = ("host", "host_credential", "run_as_administrator",
                                           "timeout")

    def _native_engine(self) -> PSEngine | None:
        unknown = sorted({key for key, _ in self.target.options} - set(self._OPTIONS))
        if unknown:
            raise TargetSpecError(f"unknown option(s) {unknown} for a Windows container",
                                  target=self.target.url,
                                  hint=f"container:// takes {', '.join(self._OPTIONS)}")
        return None  # containers go through the host's New-PSSession -ContainerId


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(psfiles.CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
