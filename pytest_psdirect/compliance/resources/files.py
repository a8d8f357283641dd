"""Linux file and mount resources: existence, mode, owner, content pattern; mount options.

Example::

    File("/etc/shadow", owner="root", max_mode=0o640)          # at most rw-r-----
    File("/etc/issue.net", contains=r"Authorized use only")    # grep -E pattern
    File("/tmp/app.conf", content="x=1\\n", mode=0o600)         # exact content (AuditAndSet writes it)
    MountOption("/tmp", options=("nodev", "nosuid"))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from ..batch import Frame
from ..model import Reason
from ..shell import ShellResource, lines_kv, q


@dataclass(frozen=True)
class File(ShellResource):
    """A file: present or absent, its mode (exact or at most), owner, group, content."""

    name: ClassVar[str] = "file"
    path: str
    exists: bool = True
    mode: int | None = None
    max_mode: int | None = None
    owner: str | None = None
    group: str | None = None
    contains: str | None = None     # an extended regular expression (grep -E) some line matches
    content: str | None = None      # the exact content

    def key(self) -> str:
        return self.path

    def expected(self) -> Mapping[str, Any]:
        wanted: dict[str, Any] = {"exists": self.exists}
        for field_name in ("owner", "group"):
            if (value := getattr(self, field_name)) is not None:
                wanted[field_name] = value
        if self.contains is not None:
            wanted["contains"] = True
        if self.content is not None:
            wanted["content_matches"] = True
        if self.mode is not None:
            wanted["mode"] = f"{self.mode:04o}"
        if self.max_mode is not None:
            wanted["mode"] = f"at most {self.max_mode:04o}"
        return wanted

    def probe(self) -> str:
        p = q(self.path)
        parts = [f"if [ -e {p} ] || [ -L {p} ]; then echo exists 1; "
                 f"stat -L -c 'stat %a %U %G %F' -- {p}; else echo exists 0; exit 0; fi"]
        if self.contains is not None:
            parts.append(f"if grep -Eq -e {q(self.contains)} -- {p}; then echo match 1; "
                         "else echo match 0; fi")
        if self.content is not None:
            # compare in the shell: the file may be large, the expected content travels once
            parts.append(f"if printf '%s' {q(self.content)} | cmp -s - {p}; then echo same 1; "
                         "else echo same 0; fi")
        return "\n".join(parts)

    def parse(self, frame: Frame) -> dict[str, Any]:
        kv = lines_kv(frame.text)
        props: dict[str, Any] = {"path": self.path, "exists": kv.get("exists") == "1"}
        if "stat" in kv:
            mode, owner, group, kind = [*kv["stat"].split(" ", 3), "", "", ""][:4]
            props.update(mode=f"{int(mode, 8):04o}", owner=owner, group=group, type=kind)
        if "match" in kv:
            props["contains"] = kv["match"] == "1"
        if "same" in kv:
            props["content_matches"] = kv["same"] == "1"
        return props

    def evaluate(self, props: Mapping[str, Any]) -> list[Reason]:
        path = self.path
        if not props["exists"]:
            return [self.reason("notpresent", f"The file {path} isn't present on the machine.")
                    ] if self.exists else []
        if not self.exists:
            return [self.reason("present", f"The file {path} is present; it should not be.")]
        reasons = []
        mode = int(props.get("mode", "0"), 8)
        if self.mode is not None and mode != self.mode:
            reasons.append(self.reason("mode", f"{path} has mode {mode:04o}, expected "
                                               f"{self.mode:04o}."))
        if self.max_mode is not None and mode & ~self.max_mode:
            reasons.append(self.reason("mode", f"{path} has mode {mode:04o}, expected at most "
                                               f"{self.max_mode:04o}."))
        for attr in ("owner", "group"):
            want = getattr(self, attr)
            if want is not None and props.get(attr) != want:
                reasons.append(self.reason(attr, f"{path} has {attr} {props.get(attr)}, "
                                                 f"expected {want}."))
        if self.contains is not None and not props.get("contains"):
            reasons.append(self.reason("content", f"No line of {path} matches "
                                                  f"{self.contains!r}."))
        if self.content is not None and not props.get("content_matches"):
            reasons.append(self.reason("content", f"{path} does not hold the expected content."))
        return reasons

    def fix(self) -> str | None:
        p = q(self.path)
        if not self.exists:
            return f"rm -f -- {p}"
        # a ``contains`` pattern says what to look for, not what to write: set leaves the
        # content alone, and the re-audit after it still reports file:file:content
        steps = []
        if self.content is not None:
            steps.append(f"printf '%s' {q(self.content)} > {p}")
        else:
            steps.append(f"[ -e {p} ] || : > {p}")
        if self.mode is not None:
            steps.append(f"chmod {self.mode:o} -- {p}")
        if self.max_mode is not None:  # clear the bits beyond max_mode, keep the others
            steps.append(f"chmod \"$(printf '%o' $(( 0$(stat -L -c %a -- {p}) & "
                         f"0{self.max_mode:o} )))\" -- {p}")
        owner = self.owner or ""
        if self.owner or self.group:
            steps.append(f"chown {q(owner + (':' + self.group if self.group else ''))} -- {p}")
        return " && ".join(steps)


@dataclass(frozen=True)
class MountOption(ShellResource):
    """A mount point: mounted, with every one of ``options`` (read from /proc/self/mounts)."""

    name: ClassVar[str] = "mount"
    mountpoint: str
    options: tuple[str, ...] = ()
    mounted: bool = True

    def key(self) -> str:
        return self.mountpoint

    def expected(self) -> Mapping[str, Any]:
        return {"mounted": self.mounted, "options": list(self.options)}

    def probe(self) -> str:
        return "cat /proc/self/mounts"

    def parse(self, frame: Frame) -> dict[str, Any]:
        found: list[str] | None = None
        fstype = ""
        for line in frame.text.splitlines():
            fields = line.split()
            # /proc/self/mounts escapes space, tab, newline and backslash as octal
            if len(fields) >= 4 and _unescape(fields[1]) == self.mountpoint:
                found, fstype = fields[3].split(","), fields[2]  # the last mount wins
        return {"mountpoint": self.mountpoint, "mounted": found is not None,
                "fstype": fstype, "options": found or []}

    def evaluate(self, props: Mapping[str, Any]) -> list[Reason]:
        where = self.mountpoint
        if not props["mounted"]:
            return [self.reason("notmounted", f"{where} is not a separate mount.")
                    ] if self.mounted else []
        if not self.mounted:
            return [self.reason("mounted", f"{where} is mounted; it should not be.")]
        missing = [o for o in self.options if o not in props["options"]]
        return [self.reason("option", f"{where} is mounted without {o}.") for o in missing]


def _unescape(field: str) -> str:
    r"""``/mnt/a\040b`` -> ``/mnt/a b`` (the octal escapes of /proc/self/mounts)."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)
