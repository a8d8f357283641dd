"""qemu:// against a real QEMU guest (TCG, busybox + qemu-ga, no network in the guest): exact
output, timeouts, cleanup at session end, files, testinfra, and bounded errors; compared with
the agent's own bare guest-exec round trip on the raw socket."""

from __future__ import annotations

import base64
import doctest
import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import pytest_psdirect.hypervisors.qemu.channel
import pytest_psdirect.hypervisors.qemu.guest
import pytest_psdirect.hypervisors.qemu.libvirt
import pytest_psdirect.hypervisors.qemu.machine
import pytest_psdirect.hypervisors.qemu.protocol
import pytest_psdirect.transports.qemu
from pytest_psdirect import Settings
from pytest_psdirect.errors import (
    CommandTimeout,
    FileTransferError,
    GuestNotReady,
    OutputTooLarge,
    TargetSpecError,
    VMNotFound,
)
from pytest_psdirect.lab.qemu import QemuLab
from pytest_psdirect.pool import SessionPool
from pytest_psdirect.targets import parse_target
from pytest_psdirect.transports import TransportRegistry
from pytest_psdirect.transports.qemu import QemuTransport

SETTINGS = Settings(connect_timeout=5, command_timeout=30)


def transport(url: str, settings: Settings = SETTINGS) -> QemuTransport:
    t = QemuTransport(parse_target(url), None, settings)
    t.open()
    return t


@pytest.fixture
def vm(qemu_lab: QemuLab) -> Iterator[QemuTransport]:
    t = transport(qemu_lab.url)
    yield t
    t.close()  # QEMU serves one agent client at a time: the next test connects afresh


def bare_exec(sock_path: str, argv: list[str]) -> tuple[int, bytes, bytes]:
    """The agent's own round trip, no psdirect code: guest-exec, then guest-exec-status."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(sock_path)
        stream = sock.makefile("rwb")

        def call(command: str, **arguments: object) -> dict[str, object]:
            stream.write(json.dumps({"execute": command, "arguments": arguments}).encode() + b"\n")
            stream.flush()
            return json.loads(stream.readline())  # type: ignore[no-any-return]

        sock.sendall(b"\xff")
        stream.write(b'{"execute": "guest-sync-delimited", "arguments": {"id": 4711}}\n')
        stream.flush()
        while stream.read(1) != b"\xff":
            pass
        assert json.loads(stream.readline()) == {"return": 4711}
        pid = call("guest-exec", path=argv[0], arg=argv[1:], **{"capture-output": True})
        while True:
            status = call("guest-exec-status", pid=pid["return"]["pid"])["return"]  # type: ignore[index]
            if status["exited"]:  # type: ignore[index]
                break
        return (status["exitcode"], base64.b64decode(status.get("out-data", "")),  # type: ignore
                base64.b64decode(status.get("err-data", "")))  # type: ignore


def test_doctests_of_the_qemu_modules() -> None:
    for module in (pytest_psdirect.hypervisors.qemu.protocol, pytest_psdirect.hypervisors.qemu.channel,
                   pytest_psdirect.hypervisors.qemu.guest, pytest_psdirect.hypervisors.qemu.machine,
                   pytest_psdirect.hypervisors.qemu.libvirt, pytest_psdirect.transports.qemu):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, module.__name__


def test_run_matches_the_agents_bare_round_trip(qemu_lab: QemuLab) -> None:
    cmd = "printf 'a\\0b\\377\\n'; echo to-err >&2; cat /data/base.txt; exit 7"
    rc, out, err = bare_exec(str(qemu_lab.vm.qga), ["/bin/sh", "-c", cmd])
    t = transport(qemu_lab.url)
    try:
        ours = t.run(cmd, timeout=10)
    finally:
        t.close()
    assert (ours.rc, ours.stdout_bytes, ours.stderr_bytes) == (rc, out, err) == \
        (7, b"a\0b\xff\nmade by pytest-psdirect's image builder\n", b"to-err\n")


def test_env_cwd_quoting_and_isolation(vm: QemuTransport) -> None:
    r = vm.run('pwd; printf %s "$V"; cd /tmp; X=1', timeout=10, env={"V": "a 'b' $c"}, cwd="/data")
    assert r.stdout == "/data\na 'b' $c" and r.rc == 0
    assert vm.run("pwd; echo ${X:-unset}", timeout=10).stdout == "/\nunset\n"
    assert vm.run("kill -9 $$", timeout=10).rc == -1  # ended by a signal, as testinfra says
    with pytest.raises(ValueError):
        vm.run("echo \0", timeout=10)


def test_large_binary_output_is_exact(vm: QemuTransport) -> None:
    r = vm.run("head -c 5000000 /dev/urandom | tee /tmp/big | sha256sum; cat /tmp/big", timeout=60)
    digest = r.stdout_bytes[:64].decode()
    body = r.stdout_bytes[r.stdout_bytes.index(b"\n") + 1:]
    assert len(body) == 5_000_000 and hashlib.sha256(body).hexdigest() == digest


def test_output_cap(qemu_lab: QemuLab) -> None:
    t = transport(qemu_lab.url, Settings(connect_timeout=5, max_output=1000))
    try:
        with pytest.raises(OutputTooLarge) as info:
            t.run("head -c 5000 /dev/zero", timeout=10)
        assert info.value.limit == 1000 and len(info.value.stdout) == 5000
        assert t.run("echo fine", timeout=10).stdout == "fine\n"
    finally:
        t.close()


def test_timeout_kills_the_command_and_what_it_started(vm: QemuTransport) -> None:
    began = time.monotonic()
    with pytest.raises(CommandTimeout) as info:
        vm.run("echo started; sleep 300 & sleep 301", timeout=1.5)
    assert time.monotonic() - began < 6
    assert info.value.stdout == b"started\n"
    left = vm.run("ps -o pid,args | grep 'sleep 30[01]'", timeout=10)
    assert left.stdout == "", left.stdout  # both sleeps, the background one too


def test_session_end_kills_what_its_commands_left(qemu_lab: QemuLab) -> None:
    t = transport(qemu_lab.url)
    t.run("sleep 400 >/dev/null 2>&1 & setsid sleep 401 >/dev/null 2>&1 &", timeout=10)
    assert len(t.run("ps -o args | grep '^sleep 40[01]'", timeout=10).stdout.splitlines()) == 2
    t.close()
    rc, out, _ = bare_exec(str(qemu_lab.vm.qga), ["/bin/sh", "-c", "ps -o args"])
    assert rc == 0 and b"sleep 40" not in out


def test_put_get_round_trip_is_exact_and_atomic(vm: QemuTransport, tmp_path: Path) -> None:
    data = bytes(range(256)) * 12_000 + b"tail"  # 3 MB: several chunks
    (tmp_path / "in").write_bytes(data)
    vm.put(str(tmp_path / "in"), "/data/copy.bin")
    assert vm.run("sha256sum /data/copy.bin", timeout=30).stdout.split()[0] == \
        hashlib.sha256(data).hexdigest()
    vm.get("/data/copy.bin", str(tmp_path / "out"))
    assert (tmp_path / "out").read_bytes() == data
    assert vm.run("ls -a /data | grep -c psdirect", timeout=10).stdout == "0\n"
    with pytest.raises(FileTransferError, match="No such file"):
        vm.get("/data/missing", str(tmp_path / "nothing"))
    assert not (tmp_path / "nothing").exists() and sorted(p.name for p in tmp_path.iterdir()) == \
        ["in", "out"]
    with pytest.raises(FileTransferError, match="/no/such/dir"):
        vm.put(str(tmp_path / "in"), "/no/such/dir/x")
    with pytest.raises(FileTransferError, match="cannot read"):
        vm.put(str(tmp_path / "absent"), "/tmp/x")


def test_testinfra_modules_over_the_agent(qemu_lab: QemuLab) -> None:
    """The shell-only testinfra modules work on a busybox guest; the answers match the guest."""
    pool = SessionPool(TransportRegistry(), SETTINGS, lambda t, required: None)
    try:
        session = pool.get(parse_target(qemu_lab.url))
        host = session.testinfra
        assert host.backend.get_connection_type() == "qemu"
        assert host.file("/data/base.txt").contains("image builder")
        assert host.file("/etc/passwd").mode == 0o644 and host.file("/data").is_directory
        assert host.user("root").uid == 0 and host.user("root").home == "/root"
        assert host.group("root").gid == 0
        assert host.run("hostname").stdout == "psdirect-guest\n"
        assert host.check_output("id -u") == "0"
        assert host.exists("qemu-ga") and not host.exists("no-such-tool")
        assert host.mount_point("/data").exists and host.mount_point("/data").filesystem == "ext4"
        assert host.sysctl("kernel.hostname") == "psdirect-guest"
    finally:
        pool.close_all()


def test_unknown_vm_and_missing_socket_fail_at_once(tmp_path: Path) -> None:
    began = time.monotonic()
    with pytest.raises(VMNotFound, match="does not exist") as info:
        transport(f"qemu://nosuch?dir={tmp_path}")
    assert "psdirect lab up --vm" in str(info.value)
    with pytest.raises(VMNotFound):
        transport(f"qemu://x?qga={tmp_path}/none.sock")
    stale = tmp_path / "stale.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(stale))
    listener.close()  # a socket file nobody listens on: QEMU is gone
    with pytest.raises(GuestNotReady, match="QEMU is not running"):
        transport(f"qemu://x?qga={stale}")
    with pytest.raises(TargetSpecError):
        transport("qemu://x?qga=/a&connect=qemu:///system")
    assert time.monotonic() - began < 3


def test_an_agent_that_never_answers_costs_the_connect_timeout(tmp_path: Path) -> None:
    path = tmp_path / "silent.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(1)
    accepted: list[socket.socket] = []
    thread = threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True)
    thread.start()
    began = time.monotonic()
    try:
        with pytest.raises(GuestNotReady, match="guest-sync-delimited") as info:
            transport(f"qemu://x?qga={path}", Settings(connect_timeout=1.5))
        assert 1.4 < time.monotonic() - began < 4
        assert "one client per agent socket" in str(info.value)
    finally:
        for conn in accepted:
            conn.close()
        server.close()


def test_a_second_client_waits_for_the_first(qemu_lab: QemuLab) -> None:
    """QEMU serves one agent client at a time: a second one gets a bounded, explained error;
    its queued sync reaches the agent later, and the next client still syncs and runs (the
    stale replies before its own sync reply are skipped)."""
    first = transport(qemu_lab.url)
    try:
        began = time.monotonic()
        with pytest.raises(GuestNotReady, match="no answer"):
            transport(qemu_lab.url, Settings(connect_timeout=1))
        assert time.monotonic() - began < 3
    finally:
        first.close()
    second = transport(qemu_lab.url)
    assert second.run("echo ok", timeout=10).stdout == "ok\n"
    second.close()
