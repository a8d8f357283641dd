"""``winrm://`` URLs and the Invoke-Command-style options, as :class:`WSManOptions` (no pypsrp
import here: the plugin checks targets at configure time with this module alone).

``winrm://[user@]host[:port][/path][?auth=...&ssl=1&cert_validation=0|1|PATH&encryption=...
&configuration_name=...&timeout=S&cert_pem=PATH&cert_key_pem=PATH]``

Example::

    >>> from pytest_psdirect.targets import parse_target
    >>> o = parse_winrm(parse_target("winrm://admin@srv01?ssl=1&auth=ntlm"))
    >>> o.endpoint, o.auth, o.cert_validation, o.configuration_name
    ('https://srv01:5986/wsman', 'ntlm', True, 'Microsoft.PowerShell')
    >>> try:
    ...     parse_winrm(parse_target("winrm://srv01?auth=digest"))
    ... except TargetSpecError as exc:
    ...     print(exc.message)
    ?auth='digest' is not one of basic, certificate, credssp, kerberos, negotiate, ntlm
    >>> computer_name_url("srv01", ssl=True, auth="kerberos")
    'winrm://srv01?auth=kerberos&ssl=1'
    >>> connection_uri_url("https://srv01:5986/wsman")
    'winrm://srv01:5986?ssl=1'
"""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass

from ..errors import TargetSpecError
from ..targets import Target

AUTHS = ("basic", "certificate", "credssp", "kerberos", "negotiate", "ntlm")
ENCRYPTIONS = ("auto", "always", "never")
#: auth methods that need no user name and password from us (a ticket cache, a certificate)
AUTHS_WITHOUT_CREDENTIAL = ("certificate", "kerberos")
DEFAULT_CONFIGURATION = "Microsoft.PowerShell"
URL_OPTIONS = ("auth", "ssl", "cert_validation", "encryption", "configuration_name", "timeout",
               "cert_pem", "cert_key_pem")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
_EXAMPLE = "write e.g. winrm://srv01?auth=negotiate&ssl=1"


@dataclass(frozen=True)
class WSManOptions:
    """Where and how to connect to a WinRM endpoint."""

    host: str
    port: int | None = None
    ssl: bool = False
    path: str = "wsman"
    auth: str = "negotiate"
    cert_validation: bool | str = True  # or the path of a CA bundle
    encryption: str = "auto"
    configuration_name: str = DEFAULT_CONFIGURATION
    certificate_pem: str | None = None
    certificate_key_pem: str | None = None

    @property
    def endpoint(self) -> str:
        port = self.port if self.port is not None else (5986 if self.ssl else 5985)
        return f"{'https' if self.ssl else 'http'}://{self.host}:{port}/{self.path}"

    @property
    def needs_credential(self) -> bool:
        return self.auth not in AUTHS_WITHOUT_CREDENTIAL


def _bool(target: Target, key: str, default: bool) -> bool:
    value = target.option(key)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise TargetSpecError(f"?{key}={value!r} is not a boolean (1/0, true/false)",
                          target=target.url, hint=_EXAMPLE)


def _choice(target: Target, key: str, choices: tuple[str, ...], default: str) -> str:
    value = (target.option(key) or default).lower()
    if value not in choices:
        raise TargetSpecError(f"?{key}={target.option(key)!r} is not one of {', '.join(choices)}",
                              target=target.url, hint=_EXAMPLE)
    return value


def parse_winrm(target: Target) -> WSManOptions:
    """Check a ``winrm://`` target's options; raise :class:`TargetSpecError` naming a bad one."""
    for key, _ in target.options:
        if key not in URL_OPTIONS:
            raise TargetSpecError(f"unknown winrm:// option {key!r}", target=target.url,
                                  hint=f"known: {', '.join(URL_OPTIONS)}")
    ssl = _bool(target, "ssl", default=False)
    auth = _choice(target, "auth", AUTHS, "negotiate")
    encryption = _choice(target, "encryption", ENCRYPTIONS, "auto")
    raw_cv = target.option("cert_validation")
    cert_validation: bool | str = True
    if raw_cv is not None and raw_cv.lower() in _TRUE + _FALSE:
        cert_validation = raw_cv.lower() in _TRUE
    elif raw_cv is not None:
        cert_validation = os.path.expanduser(raw_cv)
        if not os.path.exists(cert_validation):
            raise TargetSpecError(f"?cert_validation={raw_cv!r}: no such CA bundle file",
                                  target=target.url,
                                  hint="give 1 (system CAs), 0 (no validation, labs only) or "
                                       "the path of a PEM CA bundle")
    if not ssl and encryption == "always" and auth in ("basic", "certificate"):
        raise TargetSpecError(f"auth={auth} cannot encrypt messages over http", target=target.url,
                              hint="use ssl=1, or auth=negotiate/ntlm/kerberos/credssp")
    if not ssl and encryption != "never" and auth in ("basic", "certificate"):
        raise TargetSpecError(f"auth={auth} over http sends everything in clear text",
                              target=target.url,
                              hint="use ssl=1 (recommended), or say encryption=never explicitly")
    cert_pem, key_pem = target.option("cert_pem"), target.option("cert_key_pem")
    if auth == "certificate" and not (cert_pem and key_pem and ssl):
        raise TargetSpecError("auth=certificate needs ssl=1, cert_pem=PATH and cert_key_pem=PATH",
                              target=target.url, hint="see New-Item WSMan:\\localhost\\ClientCertificate")
    configuration = target.option("configuration_name") or DEFAULT_CONFIGURATION
    if any(c in configuration for c in "/?#& ") and configuration != DEFAULT_CONFIGURATION:
        raise TargetSpecError(f"?configuration_name={configuration!r} is not a configuration name",
                              target=target.url, hint="see Get-PSSessionConfiguration")
    return WSManOptions(host=target.host.strip("[]"), port=target.port, ssl=ssl,
                        path=target.path.strip("/") or "wsman", auth=auth,
                        cert_validation=cert_validation, encryption=encryption,
                        configuration_name=configuration,
                        certificate_pem=os.path.expanduser(cert_pem) if cert_pem else None,
                        certificate_key_pem=os.path.expanduser(key_pem) if key_pem else None)


def _query(*, ssl: bool, auth: str | None, configuration_name: str | None,
           insecure: bool) -> str:
    pairs = [("auth", auth)] if auth else []
    if insecure:
        pairs.append(("cert_validation", "0"))
    if configuration_name:
        pairs.append(("configuration_name", configuration_name))
    if ssl:
        pairs.append(("ssl", "1"))
    return "?" + urllib.parse.urlencode(sorted(pairs), safe="/:") if pairs else ""


def computer_name_url(name: str, *, port: int | None = None, ssl: bool = False,
                      auth: str | None = None, configuration_name: str | None = None,
                      insecure: bool = False) -> str:
    """``-ComputerName srv01 [-Port] [-UseSSL] [-Authentication] [-ConfigurationName]``."""
    user, _, host = name.strip().rpartition("@")
    if not host or any(c in host for c in "/?#& "):
        raise TargetSpecError(f"--computer-name {name!r} is not a host name",
                              hint="write --computer-name srv01 (or admin@srv01, a list: a,b)")
    netloc = (f"{user}@" if user else "") + host + (f":{port}" if port else "")
    return f"winrm://{netloc}" + _query(ssl=ssl, auth=auth, configuration_name=configuration_name,
                                        insecure=insecure)


def connection_uri_url(uri: str, *, auth: str | None = None,
                       configuration_name: str | None = None, insecure: bool = False) -> str:
    """``-ConnectionUri https://srv01:5986/wsman``: scheme -> ssl, port and path kept."""
    parts = urllib.parse.urlsplit(uri.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise TargetSpecError(f"--connection-uri {uri!r} is not an http(s) URI",
                              hint="write --connection-uri https://srv01:5986/wsman")
    if parts.password is not None:
        raise TargetSpecError("--connection-uri holds a password",
                              hint="use --credential-env PREFIX or an inventory credential")
    ssl = parts.scheme.lower() == "https"
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = (f"{parts.username}@" if parts.username else "") + host
    if parts.port:
        netloc += f":{parts.port}"
    path = parts.path.rstrip("/")
    path = "" if path in ("", "/wsman") else path
    return f"winrm://{netloc}{path}" + _query(ssl=ssl, auth=auth,
                                              configuration_name=configuration_name,
                                              insecure=insecure)
