"""Real podman containers for the container tests, from the lab code (``lab/containers.py``).

Images are built offline and cached (``lab/container_image.py``): ``debian`` (python3: the
command agent runs) and ``busybox`` (no python: one exec per command). The Docker CLI is tested
against podman's Engine API socket (``podman system service``), started here with its PID kept.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_psdirect import Settings
from pytest_psdirect.errors import PSDirectError
from pytest_psdirect.lab.container_image import ensure_image
from pytest_psdirect.lab.containers import ContainerLab
from pytest_psdirect.lab.procs import end_processes
from pytest_psdirect.pool import SessionPool
from pytest_psdirect.transports import TransportRegistry

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SETTINGS = Settings(connect_timeout=10, command_timeout=30)


def require(why: str | None) -> None:
    """Skip with ``why``; in CI fail instead (CI must run this tier)."""
    if why:
        if IN_CI:
            pytest.fail(f"CI must run the container tests, but {why}", pytrace=False)
        pytest.skip(why)


def _podman_broken() -> str | None:
    if shutil.which("podman") is None:
        return "podman is not installed (apt-get install podman runc uidmap slirp4netns)"
    proc = subprocess.run(["podman", "info", "--format", "{{.Host.OCIRuntime.Name}}"],
                          capture_output=True, text=True, check=False, timeout=60)
    if proc.returncode != 0:
        return f"podman does not work here: {proc.stderr.strip()[-300:]}"
    return None


@dataclass
class Lab:
    """The lab's containers: ``debian`` (python3) and ``busybox`` (no python)."""

    ctr_images: dict[str, str]
    debian: str  # container name
    busybox: str

    def url(self, name: str, runtime: str = "podman") -> str:
        return f"container://{name}?runtime={runtime}"


@pytest.fixture(scope="session")
def ctr_images() -> dict[str, str]:
    require(_podman_broken())
    try:
        return {kind: ensure_image(kind) for kind in ("debian", "busybox")}
    except PSDirectError as exc:
        require(f"the test ctr_images could not be built: {exc}")
        raise


@pytest.fixture(scope="session")
def ctr_lab(ctr_images: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """One debian and one busybox container, through ``ContainerLab`` (``psdirect lab up``)."""
    labs = [ContainerLab(tmp_path_factory.mktemp(kind)) for kind in ("debian", "busybox")]
    try:
        names = []
        for lab, kind in zip(labs, ("debian", "busybox"), strict=True):
            lab.up(1, image=ctr_images[kind])
            assert lab.state is not None
            names.append(lab.state.names[0])
        yield Lab(ctr_images, *names)
    finally:
        for lab in labs:
            lab.down()


@pytest.fixture
def ctr_pool() -> Iterator[SessionPool]:
    p = SessionPool(TransportRegistry(), SETTINGS, lambda t, required: None)
    yield p
    p.close_all()


def podman_exec(name: str, cmd: str, *, runtime: str = "podman",
                extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess[bytes]:
    """The bare peer: ``podman exec [extra] NAME sh -c CMD``."""
    return subprocess.run([runtime, "exec", *extra, name, "sh", "-c", cmd], capture_output=True,
                          stdin=subprocess.DEVNULL, check=False, timeout=60)


def container_pids(name: str, needle: str) -> list[str]:
    """``ps`` lines in the container whose command holds ``needle`` (zombies left out)."""
    out = podman_exec(name, "ps -eo pid,stat,args").stdout.decode()
    return [line for line in out.splitlines()[1:]
            if needle in line and " Z" not in line and "ps -eo" not in line]


@pytest.fixture(scope="session")
def docker_socket(tmp_path_factory: pytest.TempPathFactory, ctr_images: dict[str, str]) -> Iterator[str]:
    """``DOCKER_HOST`` of podman's Engine API service, started here and stopped by its PID."""
    require(None if shutil.which("docker") else "the docker CLI is not installed")
    sock = tmp_path_factory.mktemp("docker") / "podman.sock"
    proc = subprocess.Popen(["podman", "system", "service", "--time=0", f"unix://{sock}"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 15
        while not sock.exists():
            assert proc.poll() is None, "podman system service exited"
            assert time.monotonic() < deadline, "podman's API socket did not appear in 15 s"
            time.sleep(0.05)
        yield f"unix://{sock}"
    finally:
        end_processes([proc.pid], grace=5.0)
        proc.wait(5)


def write_file(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data
