"""Read the sshd configuration the way sshd does: first value of a keyword wins, Include expands."""

from __future__ import annotations

import shlex

from pytest_psdirect import TargetSession

_MAX_INCLUDES = 16


def sshd_settings(target: TargetSession, path: str = "/etc/ssh/sshd_config") -> dict[str, str]:
    """Keyword (lower case) -> first value, outside Match blocks, following Include lines."""
    settings: dict[str, str] = {}
    _read(target, path, settings, depth=0)
    return settings


def _read(target: TargetSession, pattern: str, settings: dict[str, str], depth: int) -> None:
    if depth > _MAX_INCLUDES:
        return
    # the pattern may be a glob (Include /etc/ssh/sshd_config.d/*.conf): let the shell expand it
    listing = target.run("for f in %s; do [ -f \"$f\" ] && printf '%%s\\n' \"$f\"; done",
                         pattern.replace("'", "")).stdout.split() if "*" in pattern else [pattern]
    for path in sorted(listing):
        for line in target.run("cat %s", path).stdout.splitlines():
            words = shlex.split(line, comments=True)
            if not words:
                continue
            keyword, values = words[0].lower(), words[1:]
            if keyword == "match":
                return  # settings below a Match line apply only to some connections
            if keyword == "include":
                for inc in values:
                    _read(target, inc if inc.startswith("/") else f"/etc/ssh/{inc}", settings,
                          depth + 1)
            elif values:
                settings.setdefault(keyword, " ".join(values))
