"""``psdirect lab up/down`` through the real CLI: what it builds, what it refuses, what it leaves.

Other labs may start and stop on this machine at the same time, so "as found" is checked for
everything named after this lab (its prefix, subnet, user) plus the machine-wide ip_forward.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import LAB_USER, describe, require_lab
from pytest_psdirect.lab import procs

PSDIRECT = str(Path(sys.executable).with_name("psdirect"))


def psdirect(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PSDIRECT, *args], capture_output=True, text=True, timeout=120)


def lab_down_quietly(workdir: Path) -> None:
    if (workdir / "lab.json").exists():
        psdirect("lab", "down", "--dir", str(workdir))


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    require_lab()
    d = tmp_path / "lab"
    yield d
    lab_down_quietly(d)  # a failed test must not leave a lab behind


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def traces(state: dict[str, object]) -> dict[str, object]:
    """Everything on this machine that carries the lab's names."""
    prefix, subnet, user = str(state["prefix"]), str(state["subnet"]), str(state["user"])
    ip = lambda *a: subprocess.run(["ip", *a], capture_output=True, text=True).stdout  # noqa: E731
    return {
        "netns": [n for n in ip("netns", "list").split() if n.startswith(prefix)],
        "links": [w for w in ip("-o", "link", "show").split() if w.startswith(prefix)],
        "etc_netns": [n for n in os.listdir("/etc/netns") if n.startswith(prefix)]
        if os.path.isdir("/etc/netns") else [],
        "routes": [r for r in ip("-4", "route", "show", "table", "all").splitlines() if subnet + "." in r],
        "user": user_exists(user),
        "home": os.path.exists(f"/home/{user}"),
    }


def ssh(workdir: Path, address: str, user: str, command: str) -> list[str]:
    return ["ssh", "-n", "-i", str(workdir / "id_ed25519"), "-o", f"UserKnownHostsFile={workdir}/known_hosts",
            "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", f"{user}@{address}", command]


def test_up_refuses_a_running_lab_and_down_leaves_nothing(workdir: Path) -> None:
    user = f"{LAB_USER}l1"
    forward_before = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    up = psdirect("lab", "up", "--dir", str(workdir), "--hosts", "2", "--user", user)
    assert up.returncode == 0, up.stderr
    state = json.loads((workdir / "lab.json").read_text())
    built = traces(state)
    assert len(built["netns"]) == 2 and built["user"] and built["home"]  # type: ignore[arg-type]
    assert f"psdirect lab down --dir {workdir}" in up.stdout
    keys_before = (workdir / "known_hosts").read_text()

    again = psdirect("lab", "up", "--dir", str(workdir), "--user", user)
    assert again.returncode == 2
    assert "already running" in again.stderr and f"psdirect lab down --dir {workdir}" in again.stderr
    assert (workdir / "known_hosts").read_text() == keys_before  # the running lab was not touched
    assert json.loads((workdir / "lab.json").read_text()) == state

    # leave work behind on both hosts: a daemonised job and a session still running a command
    h1, h2 = (h["address"] for h in state["hosts"])
    subprocess.run(ssh(workdir, h1, user, "nohup setsid sleep 312 >/dev/null 2>&1 &"), check=True,
                   capture_output=True, timeout=30)
    client = subprocess.Popen(ssh(workdir, h2, user, "sleep 313"), stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        uid = pwd.getpwnam(user).pw_uid
        deadline = time.monotonic() + 10
        while len([p for p in procs.uid_pids(uid) if "sleep 31" in procs.cmdline(p)]) < 2:
            assert time.monotonic() < deadline, "the lab user's sleeps did not start"
            time.sleep(0.05)
        in_lab = [p for h in state["hosts"] for p in procs.netns_pids(h["netns"])]
        start = time.monotonic()
        down = psdirect("lab", "down", "--dir", str(workdir))
        print(f"lab down with 2 hosts and {len(in_lab)} processes: {time.monotonic() - start:.2f}s")
        assert down.returncode == 0, down.stderr
        assert [p for p in in_lab if procs.alive(p)] == [], describe(in_lab)
        client.wait(timeout=10)  # its session was ended: the ssh client sees the connection close
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert traces(state) == {"netns": [], "links": [], "etc_netns": [], "routes": [],
                             "user": False, "home": False}
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == forward_before
    assert not workdir.exists()  # created by lab up, so removed by lab down


def test_two_labs_started_at_the_same_moment_get_different_subnets(tmp_path: Path) -> None:
    require_lab()
    dirs = [tmp_path / "a", tmp_path / "b"]
    try:
        starts = [subprocess.Popen([PSDIRECT, "lab", "up", "--dir", str(d), "--hosts", "1",
                                    "--user", f"{LAB_USER}l{n}"], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
                  for n, d in enumerate(dirs, start=2)]
        outcomes = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in starts]
        assert [rc for rc, _ in outcomes] == [0, 0], outcomes
        subnets = {json.loads((d / "lab.json").read_text())["subnet"] for d in dirs}
        assert len(subnets) == 2
    finally:
        for d in dirs:
            lab_down_quietly(d)
    assert not any(d.exists() for d in dirs)


def test_a_busy_subnet_or_an_existing_user_is_refused_before_anything_is_built(
        workdir: Path, ssh_lab: object) -> None:
    from pytest_psdirect.lab.sshlab import SSHLab

    assert isinstance(ssh_lab, SSHLab) and ssh_lab.subnet
    busy = psdirect("lab", "up", "--dir", str(workdir), "--subnet", ssh_lab.subnet,
                    "--user", f"{LAB_USER}l4")
    assert busy.returncode == 2
    assert f"subnet {ssh_lab.subnet}.0/24 is already in use" in busy.stderr
    assert not user_exists(f"{LAB_USER}l4") and not workdir.exists()

    taken = psdirect("lab", "up", "--dir", str(workdir), "--user", "root")
    assert taken.returncode == 2 and "user 'root' already exists" in taken.stderr
    assert "--user" in taken.stderr and not workdir.exists()


def test_down_without_a_lab_says_so(tmp_path: Path) -> None:
    r = psdirect("lab", "down", "--dir", str(tmp_path))
    assert r.returncode == 1 and f"no lab recorded in {tmp_path}" in r.stderr


def test_a_stale_record_is_cleaned_up_and_replaced(workdir: Path) -> None:
    """A lab.json whose namespaces and sshd are gone (say, after a reboot) does not block up."""
    workdir.mkdir()
    stale = {"prefix": "psdstal", "subnet": "10.254.0", "bridge": "psdstalbr", "user": "nobody",
             "created_user": False, "hosts": [{"name": "lab1", "netns": "psdstal-h1", "pid": 0,
                                               "address": "10.254.0.11", "hardened": True}]}
    (workdir / "lab.json").write_text(json.dumps(stale))
    user = f"{LAB_USER}l5"
    up = psdirect("lab", "up", "--dir", str(workdir), "--hosts", "1", "--user", user)
    assert up.returncode == 0, up.stderr
    assert json.loads((workdir / "lab.json").read_text())["prefix"] != "psdstal"
    assert user_exists("nobody")  # the stale record did not create it, so it was not removed
    down = psdirect("lab", "down", "--dir", str(workdir))
    assert down.returncode == 0, down.stderr
    assert not user_exists(user) and not (workdir / "lab.json").exists()
