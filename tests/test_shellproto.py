"""The sans-IO framing: exact output for any bytes, however the stream is chunked."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_psdirect.transports.shellproto import (
    STDERR,
    STDOUT,
    ShellProtocol,
    compose,
    format_command,
)


def _frame(proto: ShellProtocol, cid: int, out: bytes, err: bytes, rc: int) -> tuple[bytes, bytes]:
    mark = f"{proto.token}:{cid}".encode()
    return out + b"\n" + mark + b" %d\n" % rc, err + b"\n" + mark + b"\n"


@given(out=st.binary(max_size=300), err=st.binary(max_size=300), rc=st.integers(0, 255),
       cut=st.integers(1, 17))
def test_any_output_any_chunking(out: bytes, err: bytes, rc: int, cut: int) -> None:
    proto = ShellProtocol()
    cid, _ = proto.command("x")
    o, e = _frame(proto, cid, out, err, rc)
    done = []
    for i in range(0, max(len(o), len(e)), cut):
        done += proto.feed(STDOUT, o[i:i + cut]) + proto.feed(STDERR, e[i:i + cut])
    assert [(d.stdout, d.stderr, d.rc) for d in done] == [(out, err, rc)]
    assert not proto.busy


def test_marker_of_an_earlier_command_is_not_taken_for_the_next() -> None:
    proto = ShellProtocol(token="T")
    proto.command("a")
    assert proto.feed(STDOUT, b"\nT:1 0\n") == []
    assert proto.feed(STDERR, b"\nT:1\n")[0].cid == 1
    proto.command("b")
    assert proto.feed(STDOUT, b"T:1 0\n\nT:2 7\n") == []
    assert proto.feed(STDERR, b"\nT:2\n")[0].stdout == b"T:1 0\n"


def test_second_command_while_busy_is_refused() -> None:
    proto = ShellProtocol()
    proto.command("a")
    with pytest.raises(RuntimeError, match="still running"):
        proto.command("b")


def test_values_are_quoted_never_pasted() -> None:
    assert compose("id", env={"X": "$(reboot)"}, cwd="/a b") == \
        "cd -- '/a b' && export X='$(reboot)' && command eval id"
    assert format_command("cat %s", "; rm -rf /") == "cat '; rm -rf /'"
    with pytest.raises(ValueError, match="invalid environment variable name"):
        compose("id", env={"A;B": "1"})
