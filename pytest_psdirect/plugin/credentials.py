"""Built-in credential providers as ``pytest_psdirect_credential`` hookimpls.

Order: inventory reference and ``--credential-env`` (tryfirst), user hooks, keyring and the
interactive prompt (trylast). The prompt only runs when a credential is required, on a terminal,
outside CI and outside xdist workers; otherwise a missing required credential is a clear error.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ..credentials import providers
from ..credentials.secret import Credential
from ..errors import CredentialError
from ..targets import Target


class ExplicitProviders:
    """The target's own inventory reference, then ``--credential-env``."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_psdirect_credential(self, target: Target, config: pytest.Config,
                                   required: bool) -> Credential | None:
        if target.credential_ref:
            return providers.resolve_reference(target.credential_ref, Path(config.rootpath))
        prefix = config.getoption("credential_env")
        return providers.from_env(prefix) if prefix else None


class FallbackProviders:
    """Keyring (service ``pytest-psdirect/<host>``), then a one-time prompt when allowed.

    Both run only when the transport requires a credential and nothing earlier supplied one:
    importing and asking a keyring costs ~100 ms per target and may pop up a desktop unlock
    prompt, so ``local://`` and SSH (keys, agent) never touch it. An SSH password kept in a
    keyring is used when the inventory says so: ``credential = "keyring:SERVICE"``.
    """

    @pytest.hookimpl(trylast=True)
    def pytest_psdirect_credential(self, target: Target, config: pytest.Config,
                                   required: bool) -> Credential | None:
        if not required:
            return None
        found = providers.from_keyring(f"pytest-psdirect/{target.host or 'local'}", target.user)
        if found:
            return found
        if providers.can_prompt():
            capture = config.pluginmanager.getplugin("capturemanager")
            if capture is not None:
                capture.suspend_global_capture(in_=True)
            try:
                return providers.prompt(target.url, target.user)
            finally:
                if capture is not None:
                    capture.resume_global_capture()
        raise CredentialError(
            "a credential is required and none was found (no prompt: not a terminal, CI, or an "
            "xdist worker)", target=target.url,
            hint="pass --credential-env PREFIX, an inventory credential reference, a keyring "
                 "entry, or implement pytest_psdirect_credential in conftest.py")
