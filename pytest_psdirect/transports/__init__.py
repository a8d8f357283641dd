"""Transports by URL scheme, imported lazily so a missing optional dependency fails with a hint.

Example::

    >>> registry = TransportRegistry()
    >>> registry.get("local").__name__
    'LocalTransport'
    >>> registry.register("myproto", "mypkg.transport:MyTransport", extra="myproto")
    >>> "myproto" in registry.schemes()
    True
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from ..errors import TransportUnavailable
from .base import ShellTransport, StatefulShell, Transport

__all__ = ["BUILTIN_TRANSPORTS", "ShellTransport", "StatefulShell", "Transport",
           "TransportRegistry"]


@dataclass(frozen=True)
class _Entry:
    path: str  # "module:Class"
    extra: str | None  # pip extra that brings its dependencies


#: scheme -> "module:Class".
BUILTIN_TRANSPORTS: dict[str, _Entry] = {
    "local": _Entry("pytest_psdirect.transports.local:LocalTransport", None),
    "ssh": _Entry("pytest_psdirect.transports.ssh:SSHTransport", None),
    "pwsh+ssh": _Entry("pytest_psdirect.transports.pwsh_ssh:PwshSSHTransport", None),
    "pwsh": _Entry("pytest_psdirect.transports.pwsh_local:PwshLocalTransport", None),
    "winrm": _Entry("pytest_psdirect.transports.winrm:WinRMTransport", None),
    # Linux containers (podman/docker); with ?host= a Windows container (ContainerTransport.select)
    "container": _Entry("pytest_psdirect.transports.container:ContainerTransport", None),
    "vm": _Entry("pytest_psdirect.transports.psdirect:PSDirectTransport", None),
    "vmid": _Entry("pytest_psdirect.transports.psdirect:PSDirectIdTransport", None),
    "qemu": _Entry("pytest_psdirect.transports.qemu:QemuTransport", None),
}


class TransportRegistry:
    """Maps schemes to transport classes; plugins add theirs via
    ``pytest_psdirect_register_transports(registry)``."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry | type[Transport]] = dict(BUILTIN_TRANSPORTS)

    def register(self, scheme: str, transport: str | type[Transport],
                 *, extra: str | None = None) -> None:
        """Register a class, or ``"module:Class"`` to import on first use."""
        self._entries[scheme] = _Entry(transport, extra) if isinstance(transport, str) else transport

    def schemes(self) -> list[str]:
        """The schemes that have a transport."""
        return sorted(self._entries)

    def get(self, scheme: str) -> type[Transport]:
        """Return the transport class for ``scheme``, importing it now."""
        entry = self._entries.get(scheme)
        if entry is None:
            raise TransportUnavailable(
                f"no transport for scheme {scheme!r} yet",
                hint=f"available: {', '.join(self.schemes())}; a plugin can add one with "
                     "pytest_psdirect_register_transports")
        if not isinstance(entry, _Entry):
            return entry
        module_name, _, class_name = entry.path.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            hint = (f"pip install 'pytest-psdirect[{entry.extra}]'" if entry.extra
                    else f"pip install {exc.name or module_name}")
            raise TransportUnavailable(f"transport {scheme!r} needs {exc.name}: {exc}",
                                       hint=hint) from None
        cls = getattr(module, class_name)
        if not (isinstance(cls, type) and issubclass(cls, Transport)):
            raise TransportUnavailable(f"{entry.path} is not a Transport subclass")
        self._entries[scheme] = cls
        return cls
