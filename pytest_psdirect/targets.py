"""Targets: parsed once from a URL into a frozen dataclass.

The canonical URL (no secrets, sorted options) is the test id, the log prefix and the xdist group.

Example::

    >>> t = parse_target("ssh://admin@10.0.0.5:2222?key=~/.ssh/id&timeout=5")
    >>> t.scheme, t.user, t.host, t.port, t.option("timeout")
    ('ssh', 'admin', '10.0.0.5', 2222, '5')
    >>> t.url
    'ssh://admin@10.0.0.5:2222?key=~/.ssh/id&timeout=5'
    >>> parse_target("admin@web01").url          # bare user@host means SSH
    'ssh://admin@web01'
    >>> parse_target("local://").url
    'local://'
"""

from __future__ import annotations

import re
import urllib.parse
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from .errors import RunAsAdministratorNotForVMs, TargetSpecError

_SCHEME = re.compile(r"^[a-z][a-z0-9+.\-]*$")
_HOSTNAME = re.compile(r"^[A-Za-z0-9_.\-]+$|^\[[0-9A-Fa-f:.]+\]$")
_SECRET_OPTIONS = ("password", "passwd", "pass", "secret", "token")
#: PowerShell Direct schemes: the "host" is a VM name (percent-encoded) or a VM id (a GUID)
VM_SCHEMES = ("vm", "vmid")
#: schemes whose VM the plugin's lifecycle checks (or starts) before a session opens
LIFECYCLE_SCHEMES = (*VM_SCHEMES, "qemu")
#: URL options of vm:// and vmid:// (``host`` = the Hyper-V host, ``host_credential`` = a reference)
VM_OPTIONS = ("host", "host_credential", "route", "timeout")
#: URL options of qemu:// (the guest agent's socket, a libvirt URI, or the VMs' folder)
QEMU_OPTIONS = ("connect", "dir", "qga", "timeout")


@dataclass(frozen=True)
class Target:
    """Where tests run. Build with :func:`parse_target`; never holds a secret."""

    scheme: str
    host: str = ""
    user: str | None = None
    port: int | None = None
    path: str = ""
    options: tuple[tuple[str, str], ...] = ()
    name: str | None = None  # inventory name, if any
    tags: frozenset[str] = field(default_factory=frozenset)
    credential_ref: str | None = None  # inventory credential reference, e.g. "file:creds.toml#web"

    @property
    def url(self) -> str:
        """Canonical URL: the test id and xdist group."""
        netloc = self.host
        if self.user:
            netloc = f"{self.user}@{netloc}"
        if self.port is not None:
            netloc = f"{netloc}:{self.port}"
        if self.scheme in (*VM_SCHEMES, "container", "qemu"):  # option values are URLs: keep them parseable
            query = "&".join(f"{k}={urllib.parse.quote(v, safe=':/@,')}" for k, v in self.options)
        else:
            query = "&".join(f"{k}={v}" for k, v in self.options)
        return f"{self.scheme}://{netloc}{self.path}" + (f"?{query}" if query else "")

    @property
    def vm_name(self) -> str:
        """The decoded VM name of a ``vm://``/``qemu://`` target (its GUID for ``vmid://``)."""
        return urllib.parse.unquote(self.host)

    def option(self, key: str, default: str | None = None) -> str | None:
        """Return URL option ``key`` (``?key=value``), or ``default``."""
        return dict(self.options).get(key, default)

    def flag(self, key: str) -> bool:
        """Return a boolean URL option: ``1/true/yes/on`` are true."""
        return (self.option(key) or "").lower() in ("1", "true", "yes", "on")

    def __str__(self) -> str:
        return self.url


def parse_target(spec: str, *, name: str | None = None, tags: frozenset[str] = frozenset(),
                 credential_ref: str | None = None) -> Target:
    """Parse ``scheme://[user@]host[:port][/path][?k=v&...]`` (or bare ``[user@]host[:port]``: SSH).

    Raises :class:`TargetSpecError` naming the bad value; passwords in URLs are refused because
    a URL on the command line is visible in the process list.
    """
    text = spec.strip()
    if not text:
        raise TargetSpecError("empty target", hint="give a URL such as ssh://admin@host or local://")
    if "://" not in text:
        text = f"ssh://{text}"
    if text.split("://", 1)[0].lower() in LIFECYCLE_SCHEMES:
        return _parse_vm(spec, text, name=name, tags=tags, credential_ref=credential_ref)
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise TargetSpecError(f"malformed target {spec!r}: {exc}",
                              hint="use scheme://[user@]host[:port]") from None
    scheme = parts.scheme.lower()
    if not _SCHEME.match(scheme):
        raise TargetSpecError(f"malformed scheme {scheme!r} in target {spec!r}",
                              hint="use scheme://[user@]host[:port], e.g. ssh://admin@host")
    if parts.password is not None:
        raise TargetSpecError(
            f"target {_redact(spec)!r} has a password in its URL",
            hint="a URL is visible in argv and logs; use --credential-env PREFIX or an inventory "
                 "credential instead")
    host = parts.hostname or ""
    if parts.netloc and "[" in parts.netloc:
        host = f"[{host}]"
    if scheme in ("local", "pwsh"):  # this machine: no host
        if host not in ("", "localhost"):
            raise TargetSpecError(f"{scheme} target {spec!r} names a host",
                                  hint=f"write {scheme}://")
        host = ""
    elif not host or not _HOSTNAME.match(host):
        raise TargetSpecError(f"target {spec!r} has no valid host name",
                              hint=f"write {scheme}://[user@]host[:port]")
    options = urllib.parse.parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False)
    for key, _ in options:
        if key.lower() in _SECRET_OPTIONS:
            raise TargetSpecError(f"target {_redact(spec)!r} passes a secret as option {key!r}",
                                  hint="use --credential-env PREFIX or an inventory credential")
    return Target(scheme=scheme, host=host, user=urllib.parse.unquote(parts.username)
                  if parts.username else None, port=port, path=parts.path.rstrip("/"),
                  options=tuple(sorted(options)), name=name, tags=tags,
                  credential_ref=credential_ref)


def _parse_vm(spec: str, text: str, *, name: str | None, tags: frozenset[str],
              credential_ref: str | None) -> Target:
    """``vm://NAME[?opts]`` (NAME percent-decoded: any character a Hyper-V name may hold),
    ``qemu://NAME[?opts]`` (a QEMU VM or libvirt domain, case kept) or ``vmid://GUID[?opts]``;
    the canonical form percent-encodes the name.

    >>> parse_target("vm://my%20vm%3B%24x").vm_name
    'my vm;$x'
    >>> parse_target("vmid://{4F2C8D1A-0000-4000-8000-00000000ABCD}").url
    'vmid://4f2c8d1a-0000-4000-8000-00000000abcd'
    >>> parse_target("qemu://Web01?connect=qemu:///system").url
    'qemu://Web01?connect=qemu:///system'
    """
    scheme, _, rest = text.partition("://")
    scheme = scheme.lower()
    raw, _, query = rest.partition("?")
    raw = raw.rstrip("/")
    try:
        value = urllib.parse.unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise TargetSpecError(f"target {spec!r}: the VM name is not valid UTF-8 once decoded",
                              hint="percent-encode the name's UTF-8 bytes") from None
    if not value.strip() or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise TargetSpecError(f"target {spec!r} has no valid VM name (empty or control characters)",
                              hint="write vm://NAME (percent-encoded) or vmid://GUID")
    if scheme == "vmid":
        try:
            value = str(uuid.UUID(value))
        except ValueError:
            raise TargetSpecError(f"target {spec!r}: {value!r} is not a VM id (a GUID)",
                                  hint="write vmid://4f2c8d1a-...; Get-VM NAME | Select Id gives it, "
                                       "or use vm://NAME") from None
    options = urllib.parse.parse_qsl(query, keep_blank_values=True)
    allowed = QEMU_OPTIONS if scheme == "qemu" else VM_OPTIONS
    for key, _ in options:
        if key.lower() in ("runasadministrator", "run_as_administrator") and scheme != "qemu":
            raise RunAsAdministratorNotForVMs(
                f"target {spec!r}: Parameter set cannot be resolved using the specified named "
                "parameters. (-RunAsAdministrator is not supported when connecting to VMs)")
        if key not in allowed:
            raise TargetSpecError(f"target {_redact(spec)!r}: unknown option {key!r}",
                                  hint=f"{scheme}:// takes {', '.join(allowed)}")
    host = urllib.parse.quote(value, safe="-._~") if scheme != "vmid" else value
    return Target(scheme=scheme, host=host, options=tuple(sorted(options)), name=name, tags=tags,
                  credential_ref=credential_ref)


def check_scheme(target: Target, available: Iterable[str]) -> None:
    """Raise :class:`TargetSpecError` unless a transport serves ``target.scheme``.

    The hint lists only the schemes that have a transport (``available``, the registry's).

    >>> for url in ("ftp://h", "ssh://h"):
    ...     try:
    ...         check_scheme(parse_target(url), ["local", "ssh"])
    ...     except TargetSpecError as exc:
    ...         print(exc)
    unknown scheme 'ftp' in target 'ftp://h' (hint: use one of: local, ssh)
    """
    schemes = sorted(available)
    if target.scheme in schemes:
        return
    where = f"inventory target {target.name!r} ({target.url})" if target.name else repr(target.url)
    raise TargetSpecError(f"unknown scheme {target.scheme!r} in target {where}",
                          hint=f"use one of: {', '.join(schemes)}")


def _redact(spec: str) -> str:
    """Replace a URL's password and secret-looking options with ``***``.

    >>> _redact("ssh://a:pw@h?password=x&k=1")
    'ssh://a:***@h?password=***&k=1'
    """
    spec = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", spec)
    return re.sub(rf"(?i)\b({'|'.join(_SECRET_OPTIONS)})=[^&]*", r"\1=***", spec)
