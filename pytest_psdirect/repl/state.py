"""Sans-IO part of ``psdirect shell`` on POSIX targets: a shell's state carried between commands.

Every line runs as its own command through the session's agent (``$SHELL -c``, its own process
group, so Ctrl-C kills exactly it), as in ``ssh host cmd``. What a real shell keeps is carried
over explicitly: the line is followed by a trailer that prints a random token, the working
directory and the environment (``env -0``); the next line starts in that directory with that
environment (variables it added or changed are passed as ``env=``, ones it unset are unset).
Shell-only state (unexported variables, functions, aliases) does not carry over.

Example::

    >>> state = ShellState(token="T0K")
    >>> script = state.wrap("cd /tmp")
    >>> split = state.splitter()
    >>> split.feed(b"hello\\nT0K/tmp\\x00HOME=/root\\x00A=1\\x00")
    b'hello\\n'
    >>> state.update(split.finish())
    >>> state.cwd, state.env["A"]
    ('/tmp', '1')
"""

from __future__ import annotations

import secrets
import shlex

#: variables every new shell sets for itself: never carried over
_OWN = frozenset({"_", "SHLVL", "PWD", "OLDPWD"})


class Splitter:
    """Passes a command's stdout through until the trailer's token; keeps what follows.

    A chunk's last ``len(token) - 1`` bytes are held back while they could be the start of the
    token, so output streams as it arrives and the trailer never reaches the terminal.
    """

    def __init__(self, token: bytes) -> None:
        self._token = token
        self._held = bytearray()
        self._trailer: bytearray | None = None

    def feed(self, data: bytes) -> bytes:
        """Add a chunk of stdout; return what may be shown now."""
        if self._trailer is not None:
            self._trailer += data
            return b""
        self._held += data
        at = self._held.find(self._token)
        if at >= 0:
            self._trailer = self._held[at + len(self._token):]
            shown = bytes(self._held[:at])
            self._held.clear()
            return shown
        keep = len(self._token) - 1
        cut = max(0, len(self._held) - keep)
        while cut < len(self._held) and not self._token.startswith(bytes(self._held[cut:])):
            cut += 1
        shown = bytes(self._held[:cut])
        del self._held[:cut]
        return shown

    def rest(self) -> bytes:
        """What was held back when the command ended without a trailer (killed, ``exit``)."""
        shown = bytes(self._held)
        self._held.clear()
        return shown

    def finish(self) -> bytes | None:
        """The trailer (cwd and environment), or None when the command did not reach it."""
        return None if self._trailer is None else bytes(self._trailer)


class ShellState:
    """The working directory and environment one interactive session carries between lines."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token or f"\x1e{secrets.token_hex(12)}\x1e"
        self.cwd: str | None = None
        self.env: dict[str, str] = {}
        self._base: dict[str, str] | None = None  # the environment a fresh command gets

    def wrap(self, line: str) -> str:
        """The command that runs ``line`` in the account's shell, then prints the trailer."""
        unset = sorted(set(self._base or {}) - set(self.env) - _OWN) if self._base else []
        prefix = f"unset {' '.join(unset)}; " if unset else ""
        return (f"{prefix}eval {shlex.quote(line)}\n__psd_rc=$?\n"
                f"printf '%s%s\\0' {shlex.quote(self.token)} \"$(pwd)\"; env -0 2>/dev/null\n"
                "exit $__psd_rc")

    def extra_env(self) -> dict[str, str]:
        """Variables to pass with the next command: those that differ from a fresh shell's."""
        base = self._base or {}
        return {k: v for k, v in self.env.items() if k not in _OWN and base.get(k) != v
                and k.isidentifier() and _encodable(v)}

    def splitter(self) -> Splitter:
        return Splitter(self.token.encode())

    def update(self, trailer: bytes | None) -> None:
        """Take the cwd and environment a command ended with (nothing when it was killed)."""
        if trailer is None:
            return
        cwd, _, rest = trailer.partition(b"\0")
        self.cwd = cwd.decode("utf-8", "surrogateescape") or self.cwd
        env: dict[str, str] = {}
        for item in rest.split(b"\0"):
            name, eq, value = item.decode("utf-8", "surrogateescape").partition("=")
            if eq and name:
                env[name] = value
        if not env:  # no env -0 on this target: keep the directory only
            return
        if self._base is None:
            self._base = env
        self.env = env


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # not valid UTF-8 on the target: cannot be passed back as text
        return False
    return True
