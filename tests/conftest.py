"""Shared fixtures: the real SSH lab (sshd hosts in network namespaces), built once per run."""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from qemu_fixtures import qemu_lab  # noqa: F401  (the QEMU guest, shared by tests/test_qemu_*)

from pytest_psdirect import Credential, Secret, Settings
from pytest_psdirect.credentials.providers import from_file
from pytest_psdirect.lab import procs
from pytest_psdirect.lab.sshlab import LabHost, SSHLab, missing_facilities

#: the container tier's fixtures (real podman): tests/ctr_support.py
pytest_plugins = ["ctr_support"]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# a new user per run by default, so a run killed before its teardown never blocks the next one
LAB_USER = os.environ.get("PSDIRECT_LAB_USER") or f"psd{secrets.token_hex(3)}"


def require_lab() -> None:
    """Skip when the lab cannot run here; in CI, fail instead (CI must exercise the lab)."""
    why = missing_facilities()
    if why:
        if IN_CI:
            pytest.fail(f"CI must run the SSH lab, but {why}", pytrace=False)
        pytest.skip(why)


#: what tests/psrp_server.py imports from site-packages (found with sys.modules after importing it)
_SERVER_NEEDS = ("psrpcore", "cryptography", "_cffi_backend")


def psrp_server_command(stage: Path) -> str:
    """The test PSRP server (tests/psrp_server.py) as a command the lab user can run.

    The lab user cannot read this Python's venv (under /root, or a 0700 mktemp dir in CI), so
    the server and the packages it imports are copied into ``stage`` (made world-readable) and
    run by the system python of the same version.
    """
    import importlib.util
    import shutil
    import sys

    stage.chmod(0o755)
    here = Path(__file__).parent
    shutil.copy(here / "psrp_server.py", stage)
    shutil.copytree(here / "psrpserver", stage / "psrpserver",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in _SERVER_NEEDS:
        spec = importlib.util.find_spec(name)
        origin = Path(spec.origin) if spec and spec.origin else None
        if origin is None:
            raise RuntimeError(f"the test PSRP server needs {name}, which is not installed")
        if origin.name == "__init__.py":
            shutil.copytree(origin.parent, stage / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(origin, stage)
    for path in [stage, *stage.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    system = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    python = system if os.path.exists(system) else sys.executable
    return f"/usr/bin/env PYTHONPATH={stage} {python} {stage / 'psrp_server.py'}"


@pytest.fixture(scope="session")
def ssh_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHLab]:
    """Three real sshd hosts (lab1 hardened, lab2/lab3 weak) on a free 10.N.0.0/24."""
    require_lab()
    import shutil
    import tempfile

    stage = Path(tempfile.mkdtemp(prefix="psd-psrp-"))  # outside pytest's 0700 tmp dirs
    try:
        lab = SSHLab(tmp_path_factory.mktemp("lab"), hosts=3, user=LAB_USER,
                     subnet=os.environ.get("PSDIRECT_LAB_SUBNET"),  # e.g. "10.210.0"; default: free
                     sshd_extra=f"Subsystem powershell {psrp_server_command(stage)}\n")
        lab.up()
        yield lab
        lab.down()
    finally:
        shutil.rmtree(stage, ignore_errors=True)


@pytest.fixture(scope="session")
def lab_settings(ssh_lab: SSHLab) -> Settings:
    return Settings(ssh_key=str(ssh_lab.key_file), known_hosts=str(ssh_lab.known_hosts),
                    connect_timeout=5, command_timeout=30)


@pytest.fixture(scope="session")
def lab_password(ssh_lab: SSHLab) -> Credential:
    return from_file(ssh_lab.credentials_file, "lab")


@pytest.fixture
def lab_urls(ssh_lab: SSHLab) -> list[str]:
    assert ssh_lab.state is not None
    return [h.url for h in ssh_lab.state.hosts]


def wrong_credential() -> Credential:
    return Credential("psdtest", Secret("definitely-not-the-password-7f3a"))



# ---- fault injection on the lab (every change is undone by the `faults` fixture) -------------
def lab_host(lab: SSHLab, index: int = 0) -> LabHost:
    """The lab's host number ``index`` (0 = lab1, the hardened one)."""
    assert lab.state is not None, "the lab is not up"
    return lab.state.hosts[index]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def reset_connections(host: LabHost) -> None:
    """A hard cut: the host's kernel resets every established SSH connection (RST both ways)."""
    subprocess.run(["ip", "netns", "exec", host.netns, "ss", "-K", "state", "established",
                    "sport", "=", ":22"], check=True, capture_output=True, timeout=30)


def user_pids(host: LabHost, user: str | None = None) -> list[int]:
    """Live processes of the lab user (default: the host's user) in the host's namespace.

    Everything ``ip netns pids`` lists whose real uid is that user's: session sshd processes,
    executors, commands, background jobs. The sshd listener runs as root and never counts.
    """
    uid = pwd.getpwnam(user or host.user).pw_uid
    return [pid for pid in procs.netns_pids(host.netns) if procs.uid_of(pid) == uid and procs.alive(pid)]


def wait_user_pids_gone(host: LabHost, timeout: float = 3.0) -> tuple[list[int], float]:
    """Poll :func:`user_pids` until none are left or ``timeout``; (what is left, seconds waited)."""
    start = time.monotonic()
    while (left := user_pids(host)) and time.monotonic() - start < timeout:
        time.sleep(0.05)
    return left, time.monotonic() - start


def describe(pids: list[int]) -> str:
    """``pid: cmdline`` of each PID, for assertion messages."""
    return "; ".join(f"{pid}: {procs.cmdline(pid)}" for pid in pids) or "none"


def kill_executor(host: LabHost, needle: str = "", spare: str | None = None) -> list[int]:
    """SIGKILL the lab user's non-sshd processes on ``host`` whose cmdline holds ``needle``.

    ``spare``: leave processes whose cmdline holds it (e.g. the running command itself), so
    only the executor (shell or agent) around it dies.
    """
    victims = [pid for pid in user_pids(host)
               if needle in (line := procs.cmdline(pid)) and not line.startswith("sshd")
               and (spare is None or spare not in line)]
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return victims


class CmdlineSampler:
    """Samples ``/proc/*/cmdline`` (and optionally ``environ``) in a thread, recording hits of a needle.

    >>> with CmdlineSampler(b"secret") as s:   # doctest: +SKIP
    ...     run_something()
    >>> s.hits                                 # [(pid, "cmdline" or "environ", excerpt)]
    """

    def __init__(self, needle: bytes, environ: bool = False, interval: float = 0.01) -> None:
        self.needle, self.environ, self.interval = needle, environ, interval
        self.hits: list[tuple[int, str, str]] = []
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> CmdlineSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _loop(self) -> None:
        me = str(os.getpid())
        kinds = ("cmdline", "environ") if self.environ else ("cmdline",)
        while not self._stop.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit() or pid == me:
                    continue
                for kind in kinds:
                    with contextlib.suppress(OSError):
                        data = Path(f"/proc/{pid}/{kind}").read_bytes()
                        if self.needle in data:
                            self.hits.append((int(pid), kind, data[:200].decode(errors="replace")))
            self.samples += 1
            self._stop.wait(self.interval)


class Faults:
    """Network faults on lab hosts; every one is undone by :meth:`restore_all` (fixture teardown)."""

    def __init__(self, lab: SSHLab) -> None:
        self.lab = lab
        self._undo: list[tuple[str, ...]] = []

    def vanish(self, host: LabHost) -> None:
        """The host's link goes down: packets to it are lost (TCP stalls, nothing is reset)."""
        _ip("-n", host.netns, "link", "set", "eth0", "down")
        self._undo.append(("-n", host.netns, "link", "set", "eth0", "up"))

    def reappear(self, host: LabHost) -> None:
        """Undo :meth:`vanish` (the address comes back with the link)."""
        _ip("-n", host.netns, "link", "set", "eth0", "up")
        self._undo.remove(("-n", host.netns, "link", "set", "eth0", "up"))

    def vanish_argv(self, host: LabHost) -> list[str]:
        """The command that makes ``host`` vanish, for another process to run; undone here."""
        self._undo.append(("-n", host.netns, "link", "set", "eth0", "up"))
        return ["ip", "-n", host.netns, "link", "set", "eth0", "down"]

    def blackhole(self) -> str:
        """An unused address of the lab's subnet whose frames go to a MAC nobody has.

        Connecting to it stalls (no ARP failure, no ICMP): the purest "host vanished" peer.
        """
        assert self.lab.state is not None
        st = self.lab.state
        used = {h.address for h in st.hosts}
        address = next(a for n in range(250, 200, -1) if (a := f"{st.subnet}.{n}") not in used)
        _ip("neigh", "replace", address, "lladdr", "02:00:5e:00:53:99", "dev", st.bridge,
            "nud", "permanent")
        self._undo.append(("neigh", "del", address, "dev", st.bridge))
        return address

    def restore_all(self) -> None:
        while self._undo:
            args = self._undo.pop()
            subprocess.run(["ip", *args], check=False, capture_output=True, timeout=30)


@pytest.fixture
def faults(ssh_lab: SSHLab) -> Iterator[Faults]:
    """Inject faults into lab hosts; each one is undone after the test, even when it fails."""
    f = Faults(ssh_lab)
    yield f
    f.restore_all()
