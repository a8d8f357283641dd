"""testinfra modules over container:// compared with testinfra's own podman backend
(``podman://ID``) on the same container, in one test; and the docker CLI against podman's
Engine API socket (a real Engine API peer: no docker daemon runs here)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import testinfra
from ctr_support import Lab, container_pids

from pytest_psdirect.errors import ContainerNotFound
from pytest_psdirect.lab import containers as lab
from pytest_psdirect.pool import SessionPool
from pytest_psdirect.targets import parse_target


def facts(host: Any) -> dict[str, object]:
    """The same checks a baseline suite makes, as plain values to compare."""
    passwd, shadow = host.file("/etc/passwd"), host.file("/etc/shadow")
    root = host.user("root")
    return {
        "passwd": (passwd.exists, passwd.is_file, passwd.mode, passwd.user, passwd.group,
                   passwd.content_string, passwd.sha256sum),
        "shadow": (shadow.exists, shadow.mode, shadow.group),
        "dir": (host.file("/tmp").is_directory, host.file("/nope").exists),
        "link": (host.file("/bin").is_symlink, host.file("/bin").linked_to),
        "packages": (host.package("python3").is_installed, host.package("python3").version,
                     host.package("nginx").is_installed),
        "user": (root.exists, root.uid, root.gid, root.home, root.shell, root.group,
                 host.user("nobody-here").exists),
        "group": (host.group("root").exists, host.group("root").gid),
        "processes": sorted(p.args for p in host.process.filter(comm="sleep")),
        "system": (host.system_info.type, host.system_info.distribution,
                   host.system_info.release, host.system_info.codename, host.system_info.arch),
        "commands": [(r.rc, r.stdout, r.stderr) for r in (
            host.run("echo hi; echo err >&2; exit 4"), host.run("ls %s", "/no such"),
            host.run_test("test -d /etc"))],
        "exists": (host.exists("sh"), host.exists("no-such-tool")),
        "env": host.environment()["PATH"],
        "mount": host.mount_point("/").exists,
    }


def test_testinfra_modules_match_testinfra_podman_backend(ctr_lab: Lab,
                                                          ctr_pool: SessionPool) -> None:
    ours = ctr_pool.get(parse_target(ctr_lab.url(ctr_lab.debian))).testinfra
    theirs = testinfra.get_host(f"podman://{ctr_lab.debian}")
    assert theirs.backend.NAME == "podman"
    mine, reference = facts(ours), facts(theirs)
    assert mine == reference
    assert reference["processes"] == ["sleep infinity"]  # the checks looked at something real


def test_busybox_without_python_matches_too(ctr_lab: Lab, ctr_pool: SessionPool) -> None:
    ours = ctr_pool.get(parse_target(ctr_lab.url(ctr_lab.busybox))).testinfra
    theirs = testinfra.get_host(f"podman://{ctr_lab.busybox}")
    def look(host: Any) -> tuple[object, ...]:
        f = host.file("/etc/passwd")
        return (host.file("/bin/busybox").exists, host.file("/bin/ls").linked_to, f.mode,
                f.content_string, host.run("ls /").stdout, host.exists("python3"))

    assert look(ours) == look(theirs)
    assert look(ours)[-1] is False


# ---- docker: the docker CLI against podman's Engine API service ------------------------------
def test_docker_cli_over_podman_engine_api(ctr_lab: Lab, ctr_pool: SessionPool, docker_socket: str,
                                           monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", docker_socket)
    session = ctr_pool.get(parse_target(ctr_lab.url(ctr_lab.debian, runtime="docker")))
    assert session._transport.runtime == "docker"
    for cmd in ("echo out; echo err >&2; exit 5", "printf '\\377'", "head -c 200000 /dev/zero"):
        ours = session.run(cmd)
        bare = subprocess.run(["docker", "exec", ctr_lab.debian, "sh", "-c", cmd],
                              capture_output=True, check=False, timeout=60)
        assert (ours.rc, ours.stdout_bytes, ours.stderr_bytes) == \
            (bare.returncode, bare.stdout, bare.stderr), cmd
    assert container_pids(ctr_lab.debian, "psdirect-agent")  # one agent over `docker exec -i`
    (tmp_path / "f").write_bytes(b"\x00docker\xff" * 1000)
    session.put(str(tmp_path / "f"), "/tmp/from-docker")
    session.get("/tmp/from-docker", str(tmp_path / "g"))
    assert (tmp_path / "g").read_bytes() == (tmp_path / "f").read_bytes()
    theirs = testinfra.get_host(f"docker://{ctr_lab.debian}")
    assert facts(session.testinfra) == facts(theirs)
    with pytest.raises(ContainerNotFound, match="no such container nope-y on docker"):
        ctr_pool.get(parse_target("container://nope-y?runtime=docker"))


def test_docker_provisioning_over_podman_engine_api(ctr_images: dict[str, str], docker_socket: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The lab code through ``docker run/rm/ps/inspect`` (ulimits passed explicitly: the
    Engine API path of podman 4.3 does not apply containers.conf's default_ulimits here)."""
    monkeypatch.setenv("DOCKER_HOST", docker_socket)
    cid = lab.start("docker", ctr_images["busybox"], name="psd-docker-prov", lab="psd-docker-prov",
                    args=("--ulimit", "nofile=1024:20000", "--ulimit", "nproc=4096:4096"))
    try:
        assert cid in lab.labelled("docker", f"{lab.LAB_LABEL}=psd-docker-prov")
        assert lab.exists("podman", cid)  # the same container, seen by podman itself
    finally:
        assert lab.remove("docker", [cid]) == []
    assert not lab.exists("podman", cid)
