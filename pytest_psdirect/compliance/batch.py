"""Many shell fragments in one remote script, each one's output framed so none can corrupt another.

Each fragment runs in its own subshell with stdin from /dev/null; its stdout and stderr go to
files in a private temporary folder, then the script prints a header line
``<nonce> <index> <rc> <stdout length> <stderr length>`` followed by exactly those bytes. The
parser reads by length, and checks the nonce (random per batch) and the index of every header:
whatever a fragment prints (a fake header, binary, no trailing newline) stays inside its frame.

Example::

    >>> script, nonce = build_script(["echo hi", "echo oops >&2; exit 3"], nonce="n0")
    >>> import subprocess
    >>> out = subprocess.run(["sh", "-c", script], capture_output=True).stdout
    >>> [(f.rc, f.stdout, f.stderr) for f in parse_output(out, "n0", 2)]
    [(0, b'hi\\n', b''), (3, b'', b'oops\\n')]
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ComplianceError

#: run in every fragment's shell: sbin folders (sshd, sysctl, modprobe) for unprivileged users
PRELUDE = 'PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"; export PATH; LC_ALL=C; export LC_ALL'


@dataclass(frozen=True)
class Frame:
    """One fragment's exit status and exact output."""

    rc: int
    stdout: bytes
    stderr: bytes

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", errors="replace")


def build_script(fragments: Sequence[str], nonce: str | None = None) -> tuple[str, str]:
    """One POSIX sh script that runs every fragment and frames its output; (script, nonce)."""
    nonce = nonce or secrets.token_hex(8)
    lines = [PRELUDE,
             '__psd_d=$(mktemp -d) || exit 97',
             "trap 'rm -rf \"$__psd_d\"' EXIT"]
    for index, fragment in enumerate(fragments):
        lines.append(f'( {fragment}\n) >"$__psd_d/o" 2>"$__psd_d/e" </dev/null; __psd_rc=$?')
        lines.append(f'printf \'%s %d %d %d %d\\n\' {nonce} {index} "$__psd_rc" '
                     '"$(wc -c <"$__psd_d/o")" "$(wc -c <"$__psd_d/e")"; '
                     'cat "$__psd_d/o" "$__psd_d/e"')
    return "\n".join(lines) + "\n", nonce


def parse_output(data: bytes, nonce: str, count: int, target: str | None = None) -> list[Frame]:
    """The frames of a batch's stdout; a missing or malformed frame is a ComplianceError."""
    frames: list[Frame] = []
    pos = 0
    for index in range(count):
        end = data.find(b"\n", pos)
        header = data[pos:end].decode("ascii", errors="replace").split() if end >= 0 else []
        whole = len(header) == 5 and header[0] == nonce and header[1] == str(index) and \
            all(v.isdigit() for v in header[2:]) and \
            end + 1 + int(header[3]) + int(header[4]) <= len(data)
        if not whole:
            raise ComplianceError(
                f"the batch's output ended or broke at check {index + 1} of {count} "
                f"(header {data[pos:pos + 80]!r})", target=target,
                hint="the target's shell must be POSIX sh with mktemp and wc; a killed batch "
                     "(timeout) leaves later checks unread")
        rc, out_len, err_len = (int(v) for v in header[2:])
        start = end + 1
        stdout = data[start:start + out_len]
        stderr = data[start + out_len:start + out_len + err_len]
        pos = start + out_len + err_len
        frames.append(Frame(rc, stdout, stderr))
    return frames
