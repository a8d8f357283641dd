"""Where credentials come from: environment, credentials file, keyring, interactive prompt.

References (used in inventories): ``env:PREFIX`` (PREFIX_USERNAME/PREFIX_PASSWORD),
``file:PATH#NAME`` (a TOML table ``[NAME]`` with ``username``/``password``; the file must not be
readable by group or others), ``keyring:SERVICE`` (keyring's get_credential).

Example::

    >>> import os
    >>> os.environ.update(WEB_USERNAME="admin", WEB_PASSWORD="s3cret")
    >>> from_env("WEB")
    Credential(username='admin', secret=Secret('********'))
"""

from __future__ import annotations

import getpass
import os
import stat
import sys
import tomllib
from pathlib import Path

from ..errors import CredentialError
from .secret import Credential, Secret, env_value


def from_env(prefix: str) -> Credential:
    """Read ``PREFIX_USERNAME`` and ``PREFIX_PASSWORD``; both must be set."""
    user_var, pass_var = f"{prefix}_USERNAME", f"{prefix}_PASSWORD"
    user, password = env_value(user_var), env_value(pass_var)
    if user is None or password is None:
        missing = [v for v, x in ((user_var, user), (pass_var, password)) if x is None]
        raise CredentialError(f"environment variable(s) {', '.join(missing)} not set",
                              hint=f"export {user_var}=... and {pass_var}=... "
                                   "(or drop --credential-env)")
    return Credential(user, Secret(password), source=f"env:{prefix}")


def from_file(path: Path, name: str) -> Credential:
    """Read table ``[name]`` of a TOML credentials file that only its owner can read."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise CredentialError(f"cannot read credentials file {path}: {exc.strerror}",
                              hint="check the path in the inventory's credential reference") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CredentialError(f"credentials file {path} is readable by group or others "
                              f"(mode {stat.S_IMODE(mode):o})", hint=f"chmod 600 {path}")
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CredentialError(f"credentials file {path} is not valid TOML: {exc}",
                              hint="write [name] tables with username and password") from None
    entry = data.get(name)
    if not isinstance(entry, dict) or not isinstance(entry.get("username"), str):
        raise CredentialError(f"credentials file {path} has no [{name}] table with a username",
                              hint=f"add [{name}] with username = ... and password = ...")
    secret = entry.get("password", "")
    if not isinstance(secret, str):
        raise CredentialError(f"[{name}] password in {path} is not a string",
                              hint='quote it: password = "..."')
    return Credential(entry["username"], Secret(secret), source=f"file:{path}#{name}")


def from_keyring(service: str, username: str | None) -> Credential | None:
    """Ask the keyring (if installed and configured) for ``service``; None when absent."""
    try:
        import keyring
        import keyring.errors
    except ImportError:
        return None
    try:
        found = keyring.get_credential(service, username)
    except keyring.errors.KeyringError:
        return None
    if found is None or not found.username:
        return None
    return Credential(found.username, Secret(found.password), source=f"keyring:{service}")


def resolve_reference(ref: str, base_dir: Path) -> Credential | None:
    """Resolve an inventory reference (``env:``, ``file:PATH#NAME``, ``keyring:SERVICE``)."""
    kind, _, rest = ref.partition(":")
    if kind == "env" and rest:
        return from_env(rest)
    if kind == "file" and "#" in rest:
        file_part, _, name = rest.rpartition("#")
        path = Path(os.path.expanduser(file_part))
        return from_file(path if path.is_absolute() else base_dir / path, name)
    if kind == "keyring" and rest:
        return from_keyring(rest, None)
    raise CredentialError(f"unknown credential reference {ref!r}",
                          hint="use env:PREFIX, file:PATH#NAME or keyring:SERVICE")


def can_prompt() -> bool:
    """True only on an interactive terminal, outside CI and outside xdist workers."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes") or "PYTEST_XDIST_WORKER" in os.environ:
        return False
    return sys.stdin is not None and sys.stdin.isatty()


def prompt(label: str, username: str | None) -> Credential:
    """Ask once on the terminal (the password is not echoed)."""
    user = username or input(f"User name for {label}: ").strip()
    return Credential(user, Secret(getpass.getpass(f"Password for {user} on {label}: ")),
                      source="prompt")
