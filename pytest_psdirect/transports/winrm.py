"""``winrm://`` targets: PowerShell remoting over WinRM (PSRP on WSMan, pypsrp).

``winrm://[user@]host[:port][/path][?auth=negotiate|kerberos|ntlm|basic|certificate|credssp
&ssl=1&cert_validation=0|1|PATH&encryption=auto|always|never&configuration_name=NAME
&timeout=SECONDS]``; ``--computer-name`` and ``--connection-uri`` build these URLs. Port 5985
(http) or 5986 (https) by default; certificates are validated unless ``cert_validation=0`` says
otherwise (warned); over http, messages are encrypted by the authentication (as pypsrp and
PowerShell do). One RunspacePool per session (:mod:`pytest_psdirect.powershell.wsman`).
"""

from __future__ import annotations

import logging
import warnings
from typing import ClassVar

from ..errors import CredentialError, TargetSpecError, UnsupportedOperation
from ..powershell.command import Invocation
from ..powershell.engine import PSEngine
from ..powershell.wsman import WSManEngine
from ..powershell.wsman_job import WSManJob
from ..powershell.wsman_options import parse_winrm
from ..targets import Target
from .powershell import PowerShellTransport

log = logging.getLogger(__name__)


class InsecureCertificateWarning(UserWarning):
    """A WinRM target's TLS certificate is not validated (``cert_validation=0``)."""


class WinRMTransport(PowerShellTransport):
    """PowerShell on a Windows host over WinRM."""

    scheme: ClassVar[str] = "winrm"
    credential_required: ClassVar[bool] = True

    @classmethod
    def credential_required_for(cls, target: Target) -> bool:
        """Kerberos (a ticket cache) and certificate authentication need no password."""
        try:
            return parse_winrm(target).needs_credential
        except TargetSpecError:
            return True

    def _make_engine(self) -> PSEngine:
        options = parse_winrm(self.target)
        credential = self.credential
        if options.needs_credential and credential is None:
            raise CredentialError(f"auth={options.auth} needs a user name and password",
                                  target=self.target.url,
                                  hint="--credential-env PREFIX, an inventory credential, or "
                                       "auth=kerberos with a ticket (kinit)")
        if credential is not None and self.target.user and credential.username != self.target.user:
            credential = type(credential)(self.target.user, credential.secret, credential.source)
        if options.ssl and options.cert_validation is False:
            log.warning("%s: TLS certificate NOT validated (cert_validation=0)", self.target)
            warnings.warn(f"{self.target.url}: the WinRM server's TLS certificate is not "
                          "validated (cert_validation=0 / --winrm-insecure-certificates): "
                          "anyone in the path can read the session", InsecureCertificateWarning,
                          stacklevel=2)
        return WSManEngine(options, credential if options.needs_credential else None,
                           label=self.target.url)

    def sibling(self) -> WinRMTransport:
        return type(self)(self.target, self.credential, self.settings)

    def start_ps(self, invocation: Invocation, *, timeout: float) -> WSManJob:
        """A job on a RunspacePool of its own that survives a dropped connection: it connects
        to the pool again and collects the output (:mod:`~pytest_psdirect.powershell.wsman_job`)."""
        return WSManJob(self.sibling, invocation, timeout=timeout, label=self.target.url)

    def wsman_engine(self) -> WSManEngine:
        """The open session's engine (a job's own connection)."""
        engine = self._engine
        if not isinstance(engine, WSManEngine):
            raise UnsupportedOperation("the WinRM session is not open", target=self.target.url)
        return engine
