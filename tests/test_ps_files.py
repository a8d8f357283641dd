"""put/get on PowerShell targets: chunked, SHA-256 checked, no partial file, streamed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from psrp_fixtures import server_wrapper

from pytest_psdirect import Settings, TargetSession
from pytest_psdirect.errors import FileTransferError
from pytest_psdirect.pool import SessionPool
from pytest_psdirect.powershell import files as psfiles
from pytest_psdirect.targets import parse_target
from pytest_psdirect.transports import TransportRegistry


@pytest.fixture
def ps(tmp_path: Path) -> Iterator[TargetSession]:
    pool = SessionPool(TransportRegistry(), Settings(connect_timeout=5, command_timeout=30),
                       lambda t, r: None)
    yield pool.get(parse_target(f"pwsh://?exe={server_wrapper(tmp_path)}"))
    pool.close_all()


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".psdirect-" in p.name)


@pytest.mark.parametrize("size", [0, 1, psfiles.CHUNK, 2 * psfiles.CHUNK + 12345])
def test_put_get_round_trip(ps: TargetSession, tmp_path: Path, size: int) -> None:
    src, remote, back = tmp_path / "src", tmp_path / "remote" / "copy", tmp_path / "back"
    remote.parent.mkdir()
    src.write_bytes(os.urandom(size))
    ps.put(str(src), str(remote))
    assert remote.read_bytes() == src.read_bytes()
    ps.get(str(remote), str(back))
    assert back.read_bytes() == src.read_bytes()
    assert _leftovers(remote.parent) == [] and _leftovers(tmp_path) == []


def test_put_streams_in_chunks(ps: TargetSession, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Never more than one chunk in a message: the data parameters are counted and sized."""
    sizes: list[int] = []
    transport = ps._live_transport()
    real = transport.run_ps

    def spy(invocation, *, timeout):  # type: ignore[no-untyped-def]
        if isinstance(invocation.params.get("Data"), bytes):
            sizes.append(len(invocation.params["Data"]))
        return real(invocation, timeout=timeout)

    monkeypatch.setattr(transport, "run_ps", spy)
    src = tmp_path / "big"
    src.write_bytes(os.urandom(3 * psfiles.CHUNK + 7))
    ps.put(str(src), str(tmp_path / "dst"))
    assert sizes == [psfiles.CHUNK] * 3 + [7]
    assert (tmp_path / "dst").read_bytes() == src.read_bytes()


def test_put_failure_leaves_no_partial_file(ps: TargetSession, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.write_bytes(b"x" * 100)
    with pytest.raises(FileTransferError, match=r"copy .* failed"):
        ps.put(str(src), str(tmp_path / "no-such-dir" / "dst"))
    existing = tmp_path / "keep"
    existing.write_bytes(b"old")
    with pytest.raises(FileTransferError, match="SHA-256"):  # a corrupted transfer
        psfiles.put(psfiles.invoker(_corrupting(ps)), str(src), str(existing),
                    stall=5, finish=5, target="t")
    assert existing.read_bytes() == b"old" and _leftovers(tmp_path) == []


def _corrupting(ps: TargetSession):  # type: ignore[no-untyped-def]
    real = ps._live_transport().run_ps

    def run_ps(invocation, *, timeout):  # type: ignore[no-untyped-def]
        data = invocation.params.get("Data")
        if isinstance(data, bytes) and data:
            invocation.params["Data"] = b"y" + data[1:]
        return real(invocation, timeout=timeout)
    return run_ps


def test_get_hash_mismatch_leaves_no_file(ps: TargetSession, tmp_path: Path) -> None:
    remote = tmp_path / "psrp-test-corrupt"  # the server flips a byte of what it sends
    remote.write_bytes(b"abc" * 1000)
    with pytest.raises(FileTransferError, match="SHA-256"):
        ps.get(str(remote), str(tmp_path / "local"))
    assert not (tmp_path / "local").exists() and _leftovers(tmp_path) == []


def test_get_missing_file(ps: TargetSession, tmp_path: Path) -> None:
    with pytest.raises(FileTransferError, match="does not exist"):
        ps.get(str(tmp_path / "absent"), str(tmp_path / "local"))
    assert list(tmp_path.iterdir()) == [tmp_path / "fake-pwsh"]
