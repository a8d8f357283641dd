"""Secrets that never print.

A :class:`Secret` hides its value from ``repr``, ``str``, f-strings, logging and ``--showlocals``;
it refuses to be pickled, so it never travels to an xdist worker (workers resolve credentials
themselves from the same sources). Only :meth:`Secret.reveal` returns the value: call it inline at
the last moment (``connect(password=cred.secret.reveal())``) so no frame local holds the plain text.

Example::

    >>> s = Secret("hunter2")
    >>> s, str(s), f"{s}"
    (Secret('********'), '********', '********')
    >>> s.reveal()
    'hunter2'
    >>> Credential("admin", s)
    Credential(username='admin', secret=Secret('********'))

Every non-empty secret value registers itself in a process-wide registry when its
:class:`Secret` is created, so that everything pytest writes can be masked as CI systems mask
secrets (``plugin/redact.py`` applies :func:`mask` to the terminal, reports, logs and JUnit),
and :func:`scrubbed_environ` keeps secrets out of the environment of child processes::

    >>> mask("login with hunter2 failed")
    'login with ******** failed'
    >>> scrubbed_environ({"HOME": "/root", "DB_PASSWORD": "hunter2"})
    {'HOME': '/root'}
"""

from __future__ import annotations

import hmac
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NoReturn

MASK = "********"

_lock = threading.Lock()
_values: set[str] = set()
_env_names: set[str] = set()
_pattern: re.Pattern[str] | None = None


def register_secret(value: str) -> None:
    """Mask ``value`` (and its escaped forms, as ``repr`` shows them) from now on; "" is ignored.

    >>> register_secret("it's-a-secret"); mask(repr(["it's-a-secret"]))
    '["********"]'
    """
    global _pattern
    if not value:
        return
    forms = {value, repr(value)[1:-1], value.encode("unicode_escape").decode("ascii")}
    with _lock:
        if not forms <= _values:
            _values.update(f for f in forms if f)
            _pattern = None


def register_secret_env(name: str) -> None:
    """Never pass environment variable ``name`` to a child process (see :func:`scrubbed_environ`).

    Used for ``--credential-env PREFIX``'s ``PREFIX_PASSWORD`` at configure time, before the
    secret is read.
    """
    with _lock:
        _env_names.add(name)


_withheld: dict[str, str] = {}


def withhold_env(name: str) -> None:
    """Take variable ``name`` out of this process's environment, keeping its value here, so no
    child started later (by us or any library: ``platform`` runs ``uname``) inherits it.

    >>> os.environ["DOC_PASSWORD"] = "doc-secret-value"
    >>> withhold_env("DOC_PASSWORD")
    >>> "DOC_PASSWORD" in os.environ, env_value("DOC_PASSWORD")
    (False, 'doc-secret-value')
    """
    value = os.environ.pop(name, None)
    if value is not None:
        register_secret(value)
        with _lock:
            _withheld[name] = value


def env_value(name: str) -> str | None:
    """``os.environ[name]``, or the value :func:`withhold_env` took out; None when neither."""
    value = os.environ.get(name)
    return value if value is not None else _withheld.get(name)


def mask(text: str) -> str:
    """Replace every registered secret in ``text`` with ``********`` (longest first)."""
    global _pattern
    if not _values or not text:
        return text
    pattern = _pattern
    if pattern is None:
        with _lock:
            alternatives = sorted(_values, key=len, reverse=True)
            pattern = _pattern = re.compile("|".join(map(re.escape, alternatives)))
    return pattern.sub(MASK, text)


def scrubbed_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``environ`` without registered variable names and without any variable whose
    value holds a registered secret: the environment to give a child process."""
    with _lock:
        names, values = set(_env_names), [v for v in _values if v]
    return {k: v for k, v in environ.items()
            if k not in names and not any(secret in v for secret in values)}


class Secret:
    """A string that does not show itself. Compare with ``==`` (constant time)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register_secret(value)

    def reveal(self) -> str:
        """Return the plain value. Pass it straight on; never keep it in a variable."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(Secret)

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            "a Secret cannot be pickled: credentials are resolved in each process "
            "(xdist workers read the same env/file/keyring sources)"
        )


@dataclass(frozen=True)
class Credential:
    """A user name and a :class:`Secret` (password or key passphrase; may be empty).

    ``source`` says where it came from (``env:WEB``, ``file:/path``...), for error messages.
    """

    username: str
    secret: Secret
    source: str = "explicit"

    def __repr__(self) -> str:
        return f"Credential(username={self.username!r}, secret={self.secret!r})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Credential cannot be pickled: it holds a secret")
