"""container:// against real podman containers: each case run through us and through a bare
``podman exec`` (or ``podman cp``) side by side, with the command agent (debian: python3) and
without it (busybox: one exec per command)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from ctr_support import Lab, container_pids, podman_exec, write_file

from pytest_psdirect.errors import (
    CommandTimeout,
    ContainerNotFound,
    ContainerNotRunning,
    FileTransferError,
    SessionBroken,
    TargetSpecError,
    TransportUnavailable,
)
from pytest_psdirect.lab import containers as lab
from pytest_psdirect.pool import SessionPool
from pytest_psdirect.targets import parse_target
from pytest_psdirect.transports.container import ContainerTransport
from pytest_psdirect.transports.psdirect import WindowsContainerTransport

CASES = [
    "echo hi",
    "echo out; echo err >&2; exit 3",
    "printf 'no newline'",
    "printf '\\377\\000\\001bin'",  # bytes that are not UTF-8, a NUL
    "cat /does/not/exist",
    "exit 255",
    "no-such-command-xyz",
    "head -c 300000 /dev/zero | tr '\\0' x",  # more than one pipe buffer
    "echo \"$HOME\" \"$PATH\"; id -u; pwd",
    "read x; echo \"read:$x:$?\"",  # stdin is empty (/dev/null), as with a bare exec
]


@pytest.mark.parametrize("kind", ["debian", "busybox"])
def test_run_matches_bare_podman_exec(ctr_lab: Lab, ctr_pool: SessionPool, kind: str) -> None:
    name = getattr(ctr_lab, kind)
    session = ctr_pool.get(parse_target(ctr_lab.url(name)))
    transport = session._transport
    assert isinstance(transport, ContainerTransport)
    assert (transport._fallback is None) == (kind == "debian")  # the agent runs where python3 is
    for cmd in CASES:
        ours, bare = session.run(cmd), podman_exec(name, cmd)
        assert (ours.rc, ours.stdout_bytes, ours.stderr_bytes) == \
            (bare.returncode, bare.stdout, bare.stderr), cmd
    ours = session.run("echo $GREETING; pwd", env={"GREETING": "hé 'x' $y"}, cwd="/tmp")
    bare = podman_exec(name, "echo $GREETING; pwd", extra=("-e", "GREETING=hé 'x' $y", "-w", "/tmp"))
    assert (ours.rc, ours.stdout_bytes) == (bare.returncode, bare.stdout)


def test_a_command_killed_by_a_signal_reports_minus_one_as_over_ssh(ctr_lab: Lab,
                                                                    ctr_pool: SessionPool) -> None:
    # the agent reports -1 as OpenSSH does; a bare podman exec says 128+9
    assert ctr_pool.get(parse_target(ctr_lab.url(ctr_lab.debian))).run("kill -9 $$").rc == -1
    assert podman_exec(ctr_lab.debian, "kill -9 $$").returncode == 137


@pytest.mark.parametrize("kind", ["debian", "busybox"])
def test_put_get_round_trip_matches_podman_cp(ctr_lab: Lab, ctr_pool: SessionPool, kind: str,
                                              tmp_path: Path) -> None:
    name = getattr(ctr_lab, kind)
    session = ctr_pool.get(parse_target(ctr_lab.url(name)))
    data = write_file(tmp_path / "src.bin", 3 << 20)
    session.put(str(tmp_path / "src.bin"), "/tmp/copied.bin")
    subprocess.run(["podman", "cp", f"{name}:/tmp/copied.bin", str(tmp_path / "cp.bin")],
                   check=True, timeout=60)
    assert (tmp_path / "cp.bin").read_bytes() == data
    assert session.run("ls -a /tmp").stdout.count(".psdirect-") == 0  # no partial file left
    session.get("/tmp/copied.bin", str(tmp_path / "back.bin"))
    assert hashlib.sha256((tmp_path / "back.bin").read_bytes()).digest() == \
        hashlib.sha256(data).digest()


def test_copy_errors_name_the_cause(ctr_lab: Lab, ctr_pool: SessionPool, tmp_path: Path) -> None:
    session = ctr_pool.get(parse_target(ctr_lab.url(ctr_lab.debian)))
    (tmp_path / "f").write_text("x")
    with pytest.raises(FileTransferError, match=r"cannot create /no/such/dir/.*Directory nonexistent"):
        session.put(str(tmp_path / "f"), "/no/such/dir/f")
    with pytest.raises(FileTransferError, match="No such file or directory"):
        session.get("/no/such/file", str(tmp_path / "out"))
    assert sorted(os.listdir(tmp_path)) == ["f"]  # no partial local file


def test_stateful_shell_keeps_state(ctr_lab: Lab, ctr_pool: SessionPool) -> None:
    for name in (ctr_lab.debian, ctr_lab.busybox):
        with ctr_pool.get(parse_target(ctr_lab.url(name))).shell() as sh:
            sh.run("cd /tmp && X=42")
            assert sh.run("echo $X; pwd").stdout == "42\n/tmp\n"


def test_everything_a_session_started_ends_with_it(ctr_lab: Lab, ctr_pool: SessionPool) -> None:
    session = ctr_pool.get(parse_target(ctr_lab.url(ctr_lab.debian)))
    session.run("sleep 4001 >/dev/null 2>&1 & setsid sleep 4002 >/dev/null 2>&1 &")
    assert len(container_pids(ctr_lab.debian, "sleep 400")) == 2
    assert container_pids(ctr_lab.debian, "psdirect-agent")
    ctr_pool.close_all()
    deadline = time.monotonic() + 5
    while container_pids(ctr_lab.debian, "sleep 400") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert container_pids(ctr_lab.debian, "sleep 400") == []
    assert container_pids(ctr_lab.debian, "psdirect-agent") == []


def test_a_command_past_its_timeout_is_killed_in_the_container(ctr_lab: Lab,
                                                               ctr_pool: SessionPool) -> None:
    session = ctr_pool.get(parse_target(ctr_lab.url(ctr_lab.debian)))
    with pytest.raises(CommandTimeout) as info:
        session.run("echo started; sleep 4004", timeout=1)
    assert info.value.stdout == b"started\n"
    assert container_pids(ctr_lab.debian, "sleep 4004") == []
    assert session.run("echo next").stdout == "next\n"


def test_a_killed_controller_leaves_nothing_behind(ctr_lab: Lab, ctr_pool: SessionPool) -> None:
    """SIGKILL of our ``podman exec -i`` client: the agent sees EOF and ends what it started."""
    session = ctr_pool.get(parse_target(ctr_lab.url(ctr_lab.debian)))
    session.run("sleep 4003 >/dev/null 2>&1 &")
    runner = session._transport._runner
    assert runner is not None
    os.kill(runner._pipes._proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while container_pids(ctr_lab.debian, "sleep 4003") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert container_pids(ctr_lab.debian, "sleep 4003") == []
    assert session.run("echo again").stdout == "again\n"  # a new agent takes over


def test_unknown_and_stopped_containers_fail_fast_with_the_fix(ctr_lab: Lab, ctr_pool: SessionPool,
                                                              ctr_images: dict[str, str]) -> None:
    start = time.monotonic()
    with pytest.raises(ContainerNotFound, match=r"no such container nope-x on podman") as info:
        ctr_pool.get(parse_target("container://nope-x"))
    assert "`podman ps -a`" in str(info.value)
    created = subprocess.run(["podman", "create", "--label", f"{lab.OWNER_LABEL}={lab.owner()}",
                              ctr_images["busybox"], "true"],
                             capture_output=True, text=True, check=True).stdout.strip()
    try:
        with pytest.raises(ContainerNotRunning, match="is created, not running") as info:
            ctr_pool.get(parse_target(f"container://{created[:12]}"))
        assert f"podman start {created[:12]}" in str(info.value)
    finally:
        lab.remove("podman", [created])
    assert time.monotonic() - start < 10  # no retry loop, no wait for a timeout


def test_no_runtime_on_path(ctr_lab: Lab, ctr_pool: SessionPool, tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(TransportUnavailable, match="neither podman nor docker is on PATH"):
        ctr_pool.get(parse_target(f"container://{ctr_lab.debian}"))


def test_a_stopped_container_breaks_the_session_clearly(ctr_images: dict[str, str],
                                                        ctr_pool: SessionPool) -> None:
    cid = lab.start("podman", ctr_images["debian"], name=f"psd-stop-{os.getpid()}", lab="test")
    try:
        session = ctr_pool.get(parse_target(f"container://{cid[:12]}"))
        assert session.run("echo up").rc == 0
        lab.remove("podman", [cid])
        for _ in range(2):  # the reopen is tried once; then the same error at once
            with pytest.raises(SessionBroken, match="reopening it failed: no such container"):
                session.run("echo gone")
    finally:
        lab.remove("podman", [cid])


def test_options_and_dispatch() -> None:
    t = parse_target("container://web?runtime=podman")
    assert ContainerTransport.select(t) is ContainerTransport
    windows = parse_target("container://web?host=winrm://hv01")
    assert ContainerTransport.select(windows) is WindowsContainerTransport
    from pytest_psdirect.transports.container import check_container_target

    for bad, message in (("container://w?runtime=lxc", "not one of podman, docker"),
                         ("container://w?foo=1", "unknown option"),
                         ("container://w?run_as_administrator=1", "Windows containers"),
                         ("container://w?runtime=docker&host=hv", "exclude each other")):
        with pytest.raises(TargetSpecError, match=message):
            check_container_target(parse_target(bad))


def test_user_in_the_url_is_exec_user(ctr_lab: Lab, ctr_pool: SessionPool, tmp_path: Path) -> None:
    session = ctr_pool.get(parse_target(f"container://nobody@{ctr_lab.debian}?runtime=podman"))
    bare = podman_exec(ctr_lab.debian, "id -un; id -u", extra=("--user", "nobody"))
    assert session.run("id -un; id -u").stdout_bytes == bare.stdout == b"nobody\n65534\n"
    (tmp_path / "f").write_text("x")
    session.put(str(tmp_path / "f"), "/tmp/by-nobody")
    assert podman_exec(ctr_lab.debian, "stat -c %U /tmp/by-nobody").stdout == b"nobody\n"
    with pytest.raises(FileTransferError, match="Permission denied"):
        session.put(str(tmp_path / "f"), "/etc/not-for-nobody")
