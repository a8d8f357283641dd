"""Linux system resources: sshd setting, sysctl, service, package, kernel module.

Each reads the effective value from the running system: ``sshd -T`` (as an unprivileged user,
with a throwaway host key, since sshd -T refuses to run without a readable one), ``/proc/sys``,
the service manager or the process table, dpkg/rpm, ``/proc/modules`` and modprobe's config.

Example::

    SshdSetting("permitrootlogin", "no")
    SshdSetting("maxauthtries", 4, op="<=")
    Sysctl("net.ipv4.ip_forward", 0)
    Service("cron", running=True)
    Package("telnetd", installed=False)
    KernelModule("cramfs", loaded=False, disabled=True)
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from ...errors import ComplianceError
from ..batch import Frame
from ..model import Reason
from ..shell import ShellResource, lines_kv, q

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq, "!=": operator.ne, "<=": operator.le, ">=": operator.ge,
    "<": operator.lt, ">": operator.gt}
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@+:-]*$")


def checked_name(kind: str, value: str) -> str:
    """``value`` if it is a plain service/package/user/group name, else ComplianceError.

    >>> checked_name("user", "www-data")
    'www-data'
    """
    if not _NAME.match(value):
        raise ComplianceError(f"{kind} name {value!r} is not valid",
                              hint="letters, digits and _ . @ + : - only")
    return value


def _compare(actual: str, expected: object, op: str) -> bool:
    """Numbers compare as numbers, words case-insensitively.

    >>> _compare("3", 4, "<="), _compare("No", "no", "==")
    (True, True)
    """
    try:
        return _OPS[op](int(actual), int(str(expected)))
    except ValueError:
        return _OPS[op](actual.lower(), str(expected).lower())


#: ``sshd -T``, or as a user who cannot read the host keys, with a throwaway one; exit 127
#: when there is no sshd at all (also looked for in the sbin folders a user's PATH may lack)
_SSHD_T = ("PATH=\"$PATH:/usr/sbin:/sbin\"; command -v sshd >/dev/null || exit 127; "
           "sshd -T 2>/dev/null || { __k=$(mktemp -d) && "
           "ssh-keygen -q -t ed25519 -N '' -f \"$__k/k\" >/dev/null && "
           "sshd -T -o HostKey=\"$__k/k\"; __rc=$?; rm -rf \"$__k\"; exit $__rc; }")


@dataclass(frozen=True)
class SshdSetting(ShellResource):
    """An sshd setting, its effective value from ``sshd -T`` (defaults and Include applied)."""

    name: ClassVar[str] = "sshd"
    keyword: str
    value: str | int
    op: str = "=="

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ComplianceError(f"unknown op {self.op!r}", hint=f"one of {sorted(_OPS)}")

    def key(self) -> str:
        return self.keyword.lower()

    def expected(self) -> Mapping[str, Any]:
        return {self.keyword.lower(): f"{'' if self.op == '==' else self.op}{self.value}"}

    def probe(self) -> str:
        return _SSHD_T

    def parse(self, frame: Frame) -> dict[str, Any]:
        settings: dict[str, str] = {}
        for line in frame.text.splitlines():
            word, _, rest = line.partition(" ")
            settings.setdefault(word.lower(), rest.strip())
        if frame.rc == 127 and not settings:
            return {"readable": False, "installed": False}
        if frame.rc != 0 or not settings:
            return {"readable": False,
                    "error": frame.stderr.decode(errors="replace").strip()[:300]}
        return {"readable": True, self.keyword.lower(): settings.get(self.keyword.lower())}

    def evaluate(self, props: Mapping[str, Any]) -> list[Reason]:
        keyword = self.keyword.lower()
        if props.get("installed") is False:
            return [self.reason("notinstalled", f"sshd isn't installed on the machine (no sshd "
                                                f"command), so {keyword} cannot be checked.")]
        if not props["readable"]:
            return [self.reason("unreadable", f"sshd -T failed: {props.get('error') or 'no output'}")]
        actual = props.get(keyword)
        if actual is None:
            return [self.reason("notpresent", f"sshd -T does not report {keyword}.")]
        if _compare(actual, self.value, self.op):
            return []
        return [self.reason(keyword, f"sshd {keyword} is {actual}, expected "
                                     f"{'' if self.op == '==' else self.op + ' '}{self.value}.")]


@dataclass(frozen=True)
class Sysctl(ShellResource):
    """A kernel parameter, read from ``/proc/sys`` (``net.ipv4.ip_forward`` or a slash path)."""

    name: ClassVar[str] = "sysctl"
    parameter: str
    value: str | int

    def __post_init__(self) -> None:
        if not re.match(r"^[A-Za-z0-9_][A-Za-z0-9_./@:-]*$", self.parameter) or \
                ".." in self.parameter:
            raise ComplianceError(f"sysctl name {self.parameter!r} is not valid",
                                  hint="e.g. net.ipv4.ip_forward")

    def key(self) -> str:
        return self.parameter

    def expected(self) -> Mapping[str, Any]:
        return {"value": str(self.value)}

    @property
    def proc_path(self) -> str:
        """``net.ipv4.conf.eth0.forwarding`` -> ``/proc/sys/net/ipv4/conf/eth0/forwarding``;
        a name with ``/`` is taken as the path (for interface names holding dots)."""
        rel = self.parameter if "/" in self.parameter else self.parameter.replace(".", "/")
        return f"/proc/sys/{rel}"

    def probe(self) -> str:
        p = q(self.proc_path)
        return f"if [ -r {p} ]; then echo present 1; cat {p}; else echo present 0; fi"

    def parse(self, frame: Frame) -> dict[str, Any]:
        first, _, rest = frame.text.partition("\n")
        if first != "present 1":
            return {"present": False, "value": None}
        return {"present": True, "value": " ".join(rest.split())}  # tabs -> one space

    def evaluate(self, props: Mapping[str, Any]) -> list[Reason]:
        if not props["present"]:
            return [self.reason("notpresent", f"The kernel parameter {self.parameter} isn't "
                                              "present on the machine.")]
        want = " ".join(str(self.value).split())
        if props["value"] == want:
            return []
        return [self.reason("value", f"{self.parameter} is {props['value']}, expected {want}.")]

    def fix(self) -> str:
        return f"printf '%s\\n' {q(self.value)} > {q(self.proc_path)}"


#: services: systemd's units (active ones, enabled unit files), else the process table + rc links
_SERVICES = (
    "if [ -d /run/systemd/system ]; then echo manager systemd; "
    "systemctl list-units --type=service --all --no-legend --plain 2>/dev/null | "
    "while read -r u load act sub rest; do echo \"unit $u\"; "
    "[ \"$act\" = active ] && echo \"active $u\"; done; "
    "systemctl list-unit-files --type=service --no-legend 2>/dev/null | "
    "while read -r u st rest; do [ \"$st\" = enabled ] && echo \"enabled $u\"; "
    "[ \"$st\" = disabled ] && echo \"unit $u\"; done; "
    "else echo manager none; ps -e -o comm= | sed 's/^/comm /'; "
    "for f in /etc/rc[2345].d/S*; do [ -e \"$f\" ] && echo \"rc ${f##*/S[0-9][0-9]}\"; "
    "done; fi; exit 0")


@dataclass(frozen=True)
class Service(ShellResource):
    """A service: running or not (systemd, else the process table), enabled when known."""

    name: ClassVar[str] = "service"
    service: str
    running: bool = True
    enabled: bool | None = None

    def __post_init__(self) -> None:
        checked_name("service", self.service)

    def key(self) -> str:
        return self.service

    def expected(self) -> Mapping[str, Any]:
        wanted: dict[str, Any] = {"running": self.running}
        if self.enabled is not None:
            wanted["enabled"] = self.enabled
        return wanted

    def probe(self) -> str:
        # the same listing for every service: a batch reads it once (identical probes run once)
        return _SERVICES

    def parse(self, frame: Frame) -> dict[str, Any]:
        lines = frame.text.splitlines()
        manager = lines[0].split()[-1] if lines else "none"
        if manager == "systemd":
            active = {ln.split()[1] for ln in lines if ln.startswith("active ")}
            enabled_units = {ln.split()[1] for ln in lines if ln.startswith("enabled ")}
            unit = self.service if "." in self.service else f"{self.service}.service"
            known = {ln.split()[1] for ln in lines if ln.startswith(("unit ", "enabled "))}
            return {"manager": manager, "running": unit in active,
                    "enabled": unit in enabled_units if unit in known else None}
        running = any(ln == f"comm {self.service}" for ln in lines)
        rc = any(ln.startswith("rc ") and ln.endswith(self.service) for ln in lines)
        return {"manager": manager, "running": running, "enabled": True if rc else None}

    def evaluate(self, props: Mapping[str, Any]) -> list[Reason]:
        reasons = []
        if props["running"] != self.running:
            word = "notrunning" if self.running else "running"
            reasons.append(self.reason(word, f"The service {self.service} is "
                                             f"{'not ' if self.running else ''}running."))
        if self.enabled is not None and props["enabled"] is not None and \
                props["enabled"] != self.enabled:
            word = "notenabled" if self.enabled else "enabled"
            reasons.append(self.reason(word, f"The service {self.service} is "
                                             f"{'not ' if self.enabled else ''}enabled at boot."))
        return reasons


#: every installed package: ``name|status|version`` lines after the manager's name
_PACKAGES = (
    "if command -v dpkg-query >/dev/null; then echo dpkg; "
    "dpkg-query -W -f='${Package}|${Status}|${Version}\\n'; "
    "elif command -v rpm >/dev/null; then echo rpm; "
    "rpm -qa --qf '%{NAME}|install ok installed|%{VERSION}-%{RELEASE}\\n'; "
    "else echo nomanager; fi")


@dataclass(frozen=True)
class Package(ShellResource):
    """A package installed or not (dpkg, else rpm), with its version."""

    name: ClassVar[str] = "package"
    package: str
    installed: bool = True

    def __post_init__(self) -> None:
        checked_name("package", self.package)

    def key(self) -> str:
        return self.package

    def expected(self) -> Mapping[str, Any]:
        return {"installed": self.installed}

    def probe(self) -> str:
        return _PACKAGES  # one listing for every package: a batch reads it once

    def parse(self, frame: Frame) -> dict[str, Any]:
        lines = frame.text.splitlines()
        if not lines or lines[0] == "nomanager":
            return {"installed": None, "version": None}
        for line in lines[1:]:
            name, _, rest = line.partition("|")
            status, _, version = rest.partition("|")
            if name.split(":")[0] == self.package and status.endswith(" installed"):
                return {"installed": True, "version": version}
        return {"installed": False, "version": None}

    def evaluate(self, props: Mapping[str, Any]) -> list[Reason]:
        if props["installed"] is None:
            return [self.reason("nomanager", "Neither dpkg nor rpm is on the machine.")]
        if props["installed"] == self.installed:
            return []
        if self.installed:
            return [self.reason("notinstalled", f"The package {self.package} isn't installed.")]
        return [self.reason("installed", f"The package {self.package} is installed "
                                         f"({props['version']}); it should not be.")]


@dataclass(frozen=True)
class KernelModule(ShellResource):
    """A kernel module: loaded or not, and disabled (``install M /bin/false`` or blacklisted)."""

    name: ClassVar[str] = "kernelmodule"
    module: str
    loaded: bool = False
    disabled: bool | None = None

    def __post_init__(self) -> None:
        # kernel module names are letters, digits, _ and - (which also keeps grep -E patterns
        # below free of regex operators such as . and +)
        if not re.fullmatch(r"[A-Za-z0-9_-]+", self.module):
            raise ComplianceError(f"kernel module name {self.module!r} is not valid",
                                  hint="letters, digits, _ and - only (as lsmod shows them)")

    def key(self) -> str:
        return self.module

    def expected(self) -> Mapping[str, Any]:
        wanted: dict[str, Any] = {"loaded": self.loaded}
        if self.disabled is not None:
            wanted["disabled"] = self.disabled
        return wanted

    def probe(self) -> str:
        m = q(self.module.replace("-", "_"))
        return (f"if grep -q \"^\"{m}\" \" /proc/modules; then echo loaded 1; "
                f"else echo loaded 0; fi\n"
                f"if cat /etc/modprobe.d/*.conf /lib/modprobe.d/*.conf /usr/lib/modprobe.d/*.conf "
                f"2>/dev/null | grep -Eq \"^[[:space:]]*(install[[:space:]]+\"{m}\"[[:space:]]+"
                f"/bin/(true|false)|blacklist[[:space:]]+\"{m}\"[[:space:]]*$)\"; "
                f"then echo disabled 1; else echo disabled 0; fi")

    def parse(self, frame: Frame) -> dict[str, Any]:
        kv = lines_kv(frame.text)
        return {"loaded": kv.get("loaded") == "1", "disabled": kv.get("disabled") == "1"}

    def evaluate(self, props: Mapping[str, Any]) -> list[Reason]:
        reasons = []
        if props["loaded"] != self.loaded:
            reasons.append(self.reason("loaded" if props["loaded"] else "notloaded",
                                       f"The kernel module {self.module} is "
                                       f"{'' if props['loaded'] else 'not '}loaded."))
        if self.disabled is not None and props["disabled"] != self.disabled:
            reasons.append(self.reason("notdisabled" if self.disabled else "disabled",
                                       f"The kernel module {self.module} is "
                                       f"{'not ' if self.disabled else ''}disabled in "
                                       "modprobe's configuration."))
        return reasons
