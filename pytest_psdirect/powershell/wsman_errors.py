"""pypsrp's and requests' exceptions -> ours, each with a hint saying what to check.

Example::

    >>> from pypsrp.exceptions import AuthenticationError, WSManFaultError
    >>> err = map_error(AuthenticationError("Failed to authenticate the user x with ntlm"),
    ...                 target="winrm://srv01", auth="ntlm", opening=True, timeout=10)
    >>> type(err).__name__, "DOMAIN\\\\user" in err.hint
    ('AuthenticationFailed', True)
    >>> fault = WSManFaultError(2150858843, "srv01", "The request for the Windows Remote Shell "
    ...                         "with ShellId 1 failed because the shell was not found", None, None, None)
    >>> print(map_error(fault, target="winrm://srv01", auth="negotiate", opening=False, timeout=10))
    ... # doctest: +NORMALIZE_WHITESPACE
    winrm://srv01: the runspace pool is gone (WSMan fault 0x8033805B: The request for the Windows
    Remote Shell with ShellId 1 failed because the shell was not found) (hint: the server closed it:
    idle timeout, a WinRM restart or a reboot; the next test reopens the session)
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator

import requests
from pypsrp.exceptions import (
    AuthenticationError,
    InvalidPSRPOperation,
    WinRMError,
    WinRMTransportError,
    WSManFaultError,
)

from ..errors import (
    AuthenticationFailed,
    ConnectFailed,
    PSDirectError,
    SessionBroken,
    TargetSpecError,
)

ACCESS_DENIED = 5
OPERATION_TIMEOUT = 0x80338029
UNEXPECTED_SELECTORS = 0x8033805B  # the shell (pool) id is unknown: it is gone
SHELL_NOT_FOUND = 0x8033803D
MAX_SHELLS = 0x803381A6  # MaxShellsPerUser exceeded
MAX_CONCURRENT = 0x803381A4

_AUTH_HINTS = {
    "basic": "basic needs a local account, ssl=1 (or AllowUnencrypted on the server) and "
             "Basic enabled in WSMan:\\localhost\\Service\\Auth",
    "certificate": "the client certificate must be mapped to a user on the server "
                   "(New-Item WSMan:\\localhost\\ClientCertificate)",
    "kerberos": "kinit first (klist shows the ticket), use the host's DNS name (the SPN is "
                "WSMAN/host) and check the clocks",
    "credssp": "CredSSP must be enabled on the server (Enable-WSManCredSSP -Role Server)",
}
_DEFAULT_AUTH_HINT = ("check the user name (DOMAIN\\user or user@domain.example for domain "
                      "accounts) and password (--credential-env PREFIX, inventory credential)")


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and everything behind it: causes, contexts, urllib3's ``reason``, args."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        item = todo.pop(0)
        if id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        todo += [x for x in (item.__cause__, item.__context__, getattr(item, "reason", None),
                             *item.args) if isinstance(x, BaseException)]


def _connection_error(exc: requests.ConnectionError, target: str, timeout: float) -> PSDirectError:
    for cause in _causes(exc):
        if isinstance(cause, socket.gaierror):
            return ConnectFailed("cannot resolve the host name", target=target,
                                 hint="check the name (DNS, hosts file) or use an IP address")
        if isinstance(cause, ConnectionRefusedError) or getattr(cause, "errno", None) == errno.ECONNREFUSED:
            return ConnectFailed("connection refused", target=target,
                                 hint="is WinRM listening on that port? (Enable-PSRemoting, "
                                      "winrm quickconfig; 5985 for http, 5986 for https; a "
                                      "firewall rule for the port)")
        if getattr(cause, "errno", None) in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return ConnectFailed("no route to host", target=target,
                                 hint="the host is down or unreachable from here (network, VPN)")
        if isinstance(cause, TimeoutError | socket.timeout):
            return ConnectFailed(f"no answer within {timeout:g} s", target=target,
                                 hint="the host or a firewall drops the packets; raise "
                                      "--psdirect-connect-timeout if it is only slow")
    if any(isinstance(c, ConnectionResetError | BrokenPipeError) for c in _causes(exc)):
        return SessionBroken("the connection was reset", target=target,
                             hint="the server or something between closed it")
    return ConnectFailed(f"connection failed: {type(exc).__name__}", target=target,
                         hint="check the host, port and ?ssl= setting")


def _fault(exc: WSManFaultError, target: str, opening: bool) -> PSDirectError:
    code = exc.code
    code_text = f"0x{code:08X}" if isinstance(code, int) else str(code)
    reason = (exc.reason or "no reason given").strip()
    what = f"WSMan fault {code_text}: {reason}"
    if code == ACCESS_DENIED:
        return AuthenticationFailed(f"access denied ({what})", target=target,
                                    hint="the account must be an administrator or in Remote "
                                         "Management Users, or allowed by the session "
                                         "configuration (Get-PSSessionConfiguration)")
    if code in (UNEXPECTED_SELECTORS, SHELL_NOT_FOUND):
        return SessionBroken(f"the runspace pool is gone ({what})", target=target,
                             hint="the server closed it: idle timeout, a WinRM restart or a "
                                  "reboot; the next test reopens the session")
    if code in (MAX_SHELLS, MAX_CONCURRENT):
        return ConnectFailed(f"the server refuses more shells ({what})", target=target,
                             hint="leaked sessions count against MaxShellsPerUser until they "
                                  "idle out (15 min); close other sessions or raise the quota")
    if "session configuration" in reason.lower() or "configuration name" in reason.lower():
        return ConnectFailed(what, target=target,
                             hint="check ?configuration_name= / --configuration-name against "
                                  "Get-PSSessionConfiguration on the server")
    if opening:
        return ConnectFailed(what, target=target, hint="see the WSMan fault's reason")
    return SessionBroken(what, target=target, hint="see the WSMan fault's reason")


def map_error(exc: BaseException, *, target: str, auth: str, opening: bool,
              timeout: float) -> PSDirectError:
    """Our error for ``exc`` raised by pypsrp/requests while opening (``opening``) or using a
    pool; ``auth`` names the authentication in use (for the hint)."""
    if isinstance(exc, PSDirectError):
        return exc
    if isinstance(exc, AuthenticationError):
        return AuthenticationFailed(f"the server rejected the credential ({auth} authentication, "
                                    "HTTP 401)", target=target,
                                    hint=_AUTH_HINTS.get(auth, _DEFAULT_AUTH_HINT))
    if isinstance(exc, requests.exceptions.SSLError):
        text = str(exc)
        what = ("the server's TLS certificate is not trusted"
                if "CERTIFICATE_VERIFY_FAILED" in text or "certificate" in text.lower()
                else "the TLS handshake failed")
        return ConnectFailed(what, target=target,
                             hint="give the CA bundle that signed it (?cert_validation=PATH), or "
                                  "for a test lab only turn validation off (?cert_validation=0 "
                                  "or --winrm-insecure-certificates); a plain-http listener "
                                  "wants ssl=0")
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return ConnectFailed(f"timed out connecting after {timeout:g} s", target=target,
                             hint="the host or a firewall drops the packets; raise "
                                  "--psdirect-connect-timeout if it is only slow")
    if isinstance(exc, requests.exceptions.ReadTimeout):
        cls = ConnectFailed if opening else SessionBroken
        return cls("the server accepted the connection but sent no answer in time", target=target,
                   hint="the WinRM service hangs, or this is not a WinRM endpoint; check the "
                        "port and ?path=")
    if isinstance(exc, requests.exceptions.ConnectionError):
        return _connection_error(exc, target, timeout)
    if isinstance(exc, WSManFaultError):
        return _fault(exc, target, opening)
    if isinstance(exc, WinRMTransportError):
        hint = {404: "no WSMan endpoint at that path: check ?path= (default wsman)",
                500: "the server failed the request; see its WinRM event log"}.get(
                    exc.code, "is this a WinRM endpoint? check the port and ?ssl=")
        return ConnectFailed(f"HTTP {exc.code} from the WinRM endpoint", target=target, hint=hint)
    if isinstance(exc, InvalidPSRPOperation) and "broken" in str(exc).lower():
        return SessionBroken("the runspace pool broke", target=target,
                             hint="the server ended it (see its PowerShell event log); the "
                                  "next test reopens the session")
    if isinstance(exc, ValueError):
        return TargetSpecError(str(exc), target=target,
                               hint="fix the winrm:// options (auth, ssl, encryption)")
    if isinstance(exc, WinRMError):
        cls = ConnectFailed if opening else SessionBroken
        return cls(f"{type(exc).__name__}: {exc}", target=target, hint="")
    if isinstance(exc, requests.exceptions.RequestException | OSError):
        cls = ConnectFailed if opening else SessionBroken
        return cls(f"{type(exc).__name__}: {exc}", target=target, hint="check the host and port")
    raise exc
