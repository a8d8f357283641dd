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
    """A testinfra backend whose ``run`` goes through a :class:`TargetSession`."""

    NAME = "psdirect"

    def __init__(self, session: TargetSession, **kwargs: Any) -> None:
        self.session = session
        super().__init__(session.url, **kwargs)

    def get_pytest_id(self) -> str:
        return self.session.url

    def get_encoding(self) -> str:
        return "utf-8"

    def run(self, command: str, *args: str, **kwargs: Any) -> base.CommandResult:
        cmd = self.get_command(command, *args)
        result = self.session.run(cmd)
        return self.result(result.rc, self.encode(cmd), result.stdout_bytes, result.stderr_bytes)


def make_host(session: TargetSession, **kwargs: Any) -> testinfra.host.Host:
    """A testinfra ``Host`` over ``session`` (``sudo=True`` etc. pass through)."""
    backend = PSDirectBackend(session, **kwargs)
    host = testinfra.host.Host(backend)
    backend.set_host(host)
    return host
