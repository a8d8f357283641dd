"""pytest-testinfra over our sessions: every testinfra module, our transport and executor.

Example::

    host = target.testinfra
    assert host.file("/etc/shadow").mode == 0o640
    assert host.package("openssh-server").is_installed
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import testinfra.host
from testinfra.backend import base

if TYPE_CHECKING:
    from .sessions import TargetSession


class PSDirectBackend(base.BaseBackend):  # type: ignore[misc]  # testinfra ships no types
    """A testinfra backend whose ``run`` goes through a :class:`TargetSession`.

    It answers as testinfra's own backends do: ``get_hostname()`` is the host name of the target
    (``"local"`` for ``local://``, as testinfra's local backend), ``host`` is a testinfra
    ``HostSpec(name, port, user, password=None)`` and ``get_connection_type()`` is the target's
    scheme (``"ssh"``, ``"local"``). ``sudo``/``sudo_user`` (and ``host.sudo()``) wrap commands
    through testinfra's own ``get_command``.
    """

    NAME = "psdirect"

    def __init__(self, session: TargetSession, **kwargs: Any) -> None:
        self.session = session
        spec = session.spec
        name = spec.host.strip("[]") if spec.host else "local"
        port = str(spec.port) if spec.port is not None else None
        self.host = base.HostSpec(name, port, spec.user, None)
        super().__init__(name, **kwargs)

    def get_connection_type(self) -> str:
        return str(self.session.spec.scheme)

    def get_pytest_id(self) -> str:
        return self.session.url

    def get_encoding(self) -> str:
        return "utf-8"

    def run(self, command: str, *args: str, **kwargs: Any) -> base.CommandResult:
        cmd = self.get_command(command, *args)
        result = self.session.run(cmd)
        return self.result(result.rc, self.encode(cmd), result.stdout_bytes, result.stderr_bytes)


def make_host(session: TargetSession, **kwargs: Any) -> testinfra.host.Host:
    """A testinfra ``Host`` over ``session`` (``sudo=True`` etc. pass through).

    The target URL's ``?sudo=true`` and ``?sudo_user=USER`` (testinfra's URL options) apply too.
    """
    spec = session.spec
    if spec.flag("sudo"):
        kwargs.setdefault("sudo", True)
    if spec.option("sudo_user"):
        kwargs.setdefault("sudo", True)
        kwargs.setdefault("sudo_user", spec.option("sudo_user"))
    backend = PSDirectBackend(session, **kwargs)
    host = testinfra.host.Host(backend)
    backend.set_host(host)
    return host
