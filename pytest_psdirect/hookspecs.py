"""Hooks of pytest-psdirect. Implement them in a ``conftest.py`` or a plugin.

Example (``conftest.py``)::

    from pytest_psdirect import Credential, Secret

    def pytest_psdirect_credential(target, config, required):
        if target.host.endswith(".corp"):
            return Credential("svc-gate", Secret(my_vault.read("svc-gate")))
        return None      # let the next provider try
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .credentials.secret import Credential
    from .sessions import TargetSession
    from .targets import Target
    from .transports import TransportRegistry


@pytest.hookspec(firstresult=True)
def pytest_psdirect_credential(target: Target, config: pytest.Config,
                               required: bool) -> Credential | None:
    """Return the credential for ``target``, or None to let the next provider answer.

    Built-in providers run in this order: the target's inventory reference and
    ``--credential-env`` (tryfirst), then hooks of conftests and plugins, then keyring and,
    when ``required`` and on an interactive terminal outside CI, a prompt (trylast).
    ``required`` is True when the transport cannot connect without one (PowerShell Direct);
    SSH may also use keys or an agent.

    .. versionadded:: 0.1
    """


@pytest.hookspec(historic=True)
def pytest_psdirect_register_transports(registry: TransportRegistry) -> None:
    """Add or replace transports: ``registry.register("scheme", "pkg.mod:Class")``.

    Called once at configure time. The class subclasses
    :class:`pytest_psdirect.transports.Transport`.

    .. versionadded:: 0.1
    """


@pytest.hookspec
def pytest_psdirect_session_opened(target: Target, session: TargetSession) -> None:
    """Called after a session to ``target`` opened (also after a reopen).

    .. versionadded:: 0.1
    """


@pytest.hookspec
def pytest_psdirect_session_closed(target: Target) -> None:
    """Called after the session to ``target`` closed.

    .. versionadded:: 0.1
    """
