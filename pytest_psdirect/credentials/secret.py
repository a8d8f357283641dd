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
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import NoReturn

MASK = "********"


class Secret:
    """A string that does not show itself. Compare with ``==`` (constant time)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

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
