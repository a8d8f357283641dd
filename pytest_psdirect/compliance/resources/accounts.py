"""Linux accounts: users and groups, read with ``getent`` (files, LDAP, whatever NSS says), or
from ``/etc/passwd`` and ``/etc/group`` where there is no getent (busybox containers).

Example::

    User("root", shell="/bin/bash", uid=0)
    User("games", exists=False)
    Group("sudo", members=())          # no one in sudo
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from ..batch import Frame
from ..model import Reason
from ..shell import ShellResource, q
from .system import checked_name


def getent(database: str, name: str) -> str:
    """A fragment printing ``name``'s line of ``database`` (passwd, group) and failing when it is
    absent: ``getent`` (files, LDAP, whatever NSS says), or where there is none (busybox,
    distroless containers) the line of ``/etc/DATABASE``.

    >>> print(getent("group", "wheel"))  # doctest: +NORMALIZE_WHITESPACE
    if command -v getent >/dev/null 2>&1; then getent group wheel;
    else awk -F: -v n=wheel '$1 == n {print; f = 1} END {exit !f}' /etc/group; fi
    """
    return (f"if command -v getent >/dev/null 2>&1; then getent {database} {q(name)}; "
            f"else awk -F: -v n={q(name)} '$1 == n {{print; f = 1}} END {{exit !f}}' "
            f"/etc/{database}; fi")


@dataclass(frozen=True)
class User(ShellResource):
    """A user account: present or absent, its uid, login shell and home."""

    name: ClassVar[str] = "user"
    user: str
    exists: bool = True
    uid: int | None = None
    shell: str | None = None
    home: str | None = None

    def __post_init__(self) -> None:
        checked_name("user", self.user)

    def key(self) -> str:
        return self.user

    def expected(self) -> Mapping[str, Any]:
        wanted: dict[str, Any] = {"exists": self.exists}
        for attr in ("uid", "shell", "home"):
            if getattr(self, attr) is not None:
                wanted[attr] = getattr(self, attr)
        return wanted

    def probe(self) -> str:
        return getent("passwd", self.user)

    def parse(self, frame: Frame) -> dict[str, Any]:
        fields = frame.text.rstrip("\n").split(":")
        if frame.rc != 0 or len(fields) < 7:
            return {"exists": False}
        return {"exists": True, "uid": int(fields[2]), "gid": int(fields[3]),
                "home": fields[5], "shell": fields[6]}

    def evaluate(self, props: Mapping[str, Any]) -> list[Reason]:
        if not props["exists"]:
            return [self.reason("notpresent", f"The user {self.user} isn't present on the "
                                              "machine.")] if self.exists else []
        if not self.exists:
            return [self.reason("present", f"The user {self.user} is present; it should not be.")]
        return [self.reason(attr, f"The user {self.user} has {attr} {props[attr]}, expected "
                                  f"{getattr(self, attr)}.")
                for attr in ("uid", "shell", "home")
                if getattr(self, attr) is not None and props[attr] != getattr(self, attr)]


@dataclass(frozen=True)
class Group(ShellResource):
    """A group: present or absent, its gid and exact members (when given)."""

    name: ClassVar[str] = "group"
    group: str
    exists: bool = True
    gid: int | None = None
    members: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        checked_name("group", self.group)

    def key(self) -> str:
        return self.group

    def expected(self) -> Mapping[str, Any]:
        wanted: dict[str, Any] = {"exists": self.exists}
        if self.gid is not None:
            wanted["gid"] = self.gid
        if self.members is not None:
            wanted["members"] = sorted(self.members)
        return wanted

    def probe(self) -> str:
        return getent("group", self.group)

    def parse(self, frame: Frame) -> dict[str, Any]:
        fields = frame.text.rstrip("\n").split(":")
        if frame.rc != 0 or len(fields) < 4:
            return {"exists": False}
        return {"exists": True, "gid": int(fields[2]),
                "members": sorted(m for m in fields[3].split(",") if m)}

    def evaluate(self, props: Mapping[str, Any]) -> list[Reason]:
        if not props["exists"]:
            return [self.reason("notpresent", f"The group {self.group} isn't present on the "
                                              "machine.")] if self.exists else []
        if not self.exists:
            return [self.reason("present", f"The group {self.group} is present; it should "
                                           "not be.")]
        reasons = []
        if self.gid is not None and props["gid"] != self.gid:
            reasons.append(self.reason("gid", f"The group {self.group} has gid {props['gid']}, "
                                              f"expected {self.gid}."))
        if self.members is not None and props["members"] != sorted(self.members):
            reasons.append(self.reason("members", f"The group {self.group} has members "
                                                  f"{props['members'] or 'none'}, expected "
                                                  f"{sorted(self.members) or 'none'}."))
        return reasons
