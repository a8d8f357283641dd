"""Many shell fragments in one remote script, each one's output framed so none can corrupt another.

Each fragment runs in its own subshell with stdin from /dev/null; its stdout and stderr go to
files ``N.o`` and ``N.e`` in a private temporary folder. At the end the script prints one line
``<nonce> <rc 0> <rc 1> ...``, then ``wc -c`` of every file in order, then the files' bytes
(one ``cat``). The parser slices the bytes by those lengths, so whatever a fragment prints (a
fake header, binary, no trailing newline) stays inside its own frame; the nonce is random per
batch. Framing costs one fork per fragment (its subshell) plus three per batch.

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
        lines.append(f'( {fragment}\n) >"$__psd_d/{index}.o" 2>"$__psd_d/{index}.e" </dev/null; '
                     f'__psd_r{index}=$?')
    rcs = " ".join(f'"$__psd_r{i}"' for i in range(len(fragments)))
    files = " ".join(f"{i}.o {i}.e" for i in range(len(fragments)))
    lines.append(f"printf '%s' {nonce}; printf ' %s' {rcs}; printf '\\n'")
    lines.append(f'cd "$__psd_d" && wc -c {files} && cat {files}')
    return "\n".join(lines) + "\n", nonce


def _broken(index: int, count: int, data: bytes, target: str | None) -> ComplianceError:
    return ComplianceError(
        f"the batch's output ended or broke at check {index + 1} of {count} "
        f"(starts {data[:80]!r})", target=target,
        hint="the target's shell must be POSIX sh with mktemp, wc and cat; a killed batch "
             "(timeout) leaves later checks unread")


def parse_output(data: bytes, nonce: str, count: int, target: str | None = None) -> list[Frame]:
    """The frames of a batch's stdout; a missing or malformed frame is a ComplianceError."""
    lines = data.split(b"\n", 2 * count + 2)  # header, 2N sizes, "total", the bytes
    header = lines[0].decode("ascii", errors="replace").split()
    if len(header) != count + 1 or header[0] != nonce or len(lines) < 2 * count + 3:
        raise _broken(0, count, data, target)
    sizes: list[int] = []
    for line in lines[1:2 * count + 1]:
        size = line.split()[:1]
        if not size or not size[0].isdigit():
            raise _broken(len(sizes) // 2, count, data, target)
        sizes.append(int(size[0]))
    body = lines[-1]
    frames, pos = [], 0
    for index in range(count):
        out_len, err_len = sizes[2 * index], sizes[2 * index + 1]
        if pos + out_len + err_len > len(body) or not header[index + 1].isdigit():
            raise _broken(index, count, data, target)
        frames.append(Frame(int(header[index + 1]), body[pos:pos + out_len],
                            body[pos + out_len:pos + out_len + err_len]))
        pos += out_len + err_len
    return frames
