"""Containers started for a lab or a test scope, always removed, and reaped when a run died.

Every container gets the label ``io.psdirect.lab`` = the lab or run it belongs to, and (unless
it belongs to a ``psdirect lab``, which outlives the command) ``io.psdirect.owner`` =
``HOSTNAME:PID`` of the process that started it. :func:`remove` ends them
at once (``rm --force --time 0``); :func:`reap_orphans` removes those whose owner process on this
machine has died (a killed pytest or xdist worker), so a crash leaves nothing behind for long.
Containers run ``sleep infinity`` under ``--init`` (so orphans are reaped and a stop is quick).

Example::

    lab = ContainerLab(Path(".lab"))
    lab.up(2)            # ['container://psd-1a2b-c1?runtime=podman', ...]
    lab.down()
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import socket
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import LabError
from .container_image import ensure_image
from .procs import alive

log = logging.getLogger(__name__)
OWNER_LABEL = "io.psdirect.owner"
LAB_LABEL = "io.psdirect.lab"
STATE_FILE = "containers.json"
RUNTIMES = ("podman", "docker")
_TIMEOUT = 120.0


def pick_runtime(wanted: str | None = None) -> str:
    """``wanted``, or the first of podman, docker on PATH; LabError when there is none."""
    for runtime in [wanted] if wanted else RUNTIMES:
        if shutil.which(runtime):
            return runtime
    raise LabError(f"no container runtime: {wanted or 'neither podman nor docker'} is on PATH",
                   hint="install podman (apt-get install podman) or docker")


def owner() -> str:
    """This process as an owner label: ``HOSTNAME:PID``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _cli(runtime: str, *args: str, timeout: float = _TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([runtime, *args], stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, check=False, timeout=timeout)


def start(runtime: str, image: str, *, name: str, lab: str, owned: bool = True,
          args: tuple[str, ...] = (), command: tuple[str, ...] = ("sleep", "infinity")) -> str:
    """Start a detached container; return its full id. ``args`` are extra ``run`` options.

    ``owned``: label it with this process (:func:`reap_orphans` removes it once this process
    has ended); a lab's containers outlive ``lab up`` and are not.
    """
    labels = ["--label", f"{LAB_LABEL}={lab}"]
    if owned:
        labels += ["--label", f"{OWNER_LABEL}={owner()}"]
    proc = _cli(runtime, "run", "--detach", "--rm", "--init", "--stop-timeout", "1",
                "--name", name, *labels, *args, image, *command)
    if proc.returncode != 0:
        hint = (f"--init needs {runtime}'s init binary: apt-get install catatonit"
                if "container-init" in proc.stderr
                else f"check the image (`{runtime} images`) and `{runtime} info`")
        raise LabError(f"`{runtime} run {image}` failed: {proc.stderr.strip()[-500:]}", hint=hint)
    return proc.stdout.strip().splitlines()[-1]


def remove(runtime: str, ids: list[str]) -> list[str]:
    """Remove containers now (killed, not stopped politely); return the ids still present."""
    if not ids:
        return []
    now = ["--time", "0"] if os.path.basename(runtime) == "podman" else []  # docker rm -f kills
    _cli(runtime, "rm", "--force", *now, *ids)
    return [cid for cid in ids if exists(runtime, cid)]


def exists(runtime: str, cid: str) -> bool:
    """True while ``cid`` names a container on ``runtime``."""
    return _cli(runtime, "container", "inspect", "--format", "{{.Id}}", cid).returncode == 0


def labelled(runtime: str, label: str) -> dict[str, dict[str, str]]:
    """Containers (running or not) carrying ``label``: id -> their labels."""
    proc = _cli(runtime, "ps", "--all", "--filter", f"label={label}", "--format", "{{.ID}}")
    ids = proc.stdout.split() if proc.returncode == 0 else []
    if not ids:
        return {}
    proc = _cli(runtime, "container", "inspect", "--format", "{{.Id}} {{json .Config.Labels}}", *ids)
    found = {}
    for line in proc.stdout.splitlines():
        cid, _, labels = line.partition(" ")
        found[cid] = json.loads(labels or "{}") or {}
    return found


def reap_orphans(runtime: str) -> list[str]:
    """Remove containers we started on this machine whose owner process has ended."""
    host = socket.gethostname()
    dead = []
    for cid, labels in labelled(runtime, OWNER_LABEL).items():
        name, _, pid = labels.get(OWNER_LABEL, "").rpartition(":")
        if name == host and pid.isdigit() and not alive(int(pid)):
            dead.append(cid)
    if dead:
        log.warning("removing %d container(s) left by ended runs: %s", len(dead), dead)
        remove(runtime, dead)
    return dead


@dataclass
class LabState:
    """What :meth:`ContainerLab.down` removes; saved to ``containers.json``."""

    lab: str
    runtime: str
    image: str
    names: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)

    def urls(self) -> list[str]:
        return [f"container://{n}?runtime={self.runtime}" for n in self.names]


class ContainerLab:
    """N containers of the offline-built test image (``psdirect lab up --containers N``)."""

    def __init__(self, workdir: Path, runtime: str | None = None) -> None:
        self.workdir = workdir
        self.wanted_runtime = runtime
        self.state: LabState | None = None

    @property
    def state_file(self) -> Path:
        return self.workdir / STATE_FILE

    def up(self, count: int, image: str | None = None) -> list[str]:
        """Start ``count`` containers; return their URLs. On failure, remove what started."""
        if self.state_file.exists():
            old = ContainerLab.load(self.workdir)
            assert old.state is not None
            if any(exists(old.state.runtime, cid) for cid in old.state.ids):
                raise LabError(f"containers of a lab are already running ({self.state_file})",
                               hint=f"psdirect lab down --dir {self.workdir}")
            self.state_file.unlink()
        runtime = pick_runtime(self.wanted_runtime)
        reap_orphans(runtime)
        lab = f"psd-{secrets.token_hex(3)}"
        self.state = LabState(lab, runtime, image or ensure_image("debian", runtime))
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            for i in range(1, count + 1):
                name = f"{lab}-c{i}"
                self.state.names.append(name)
                self.state.ids.append(start(runtime, self.state.image, name=name, lab=lab,
                                           owned=False))
                self._save()
        except BaseException:
            self.down()
            raise
        return self.state.urls()

    def _save(self) -> None:
        assert self.state is not None
        self.state_file.write_text(json.dumps(asdict(self.state), indent=1))

    @classmethod
    def load(cls, workdir: Path) -> ContainerLab:
        """The lab recorded in ``workdir/containers.json``."""
        lab = cls(workdir)
        lab.state = LabState(**json.loads(lab.state_file.read_text()))
        return lab

    def down(self) -> None:
        """Remove exactly the recorded containers (and its label's, should one be missed)."""
        st = self.state
        if st is None:
            return
        ids = sorted(set(st.ids) | set(labelled(st.runtime, f"{LAB_LABEL}={st.lab}")))
        left = remove(st.runtime, ids)
        if left:
            raise LabError(f"containers {left} survived `{st.runtime} rm --force`",
                           hint=f"remove them by hand: {st.runtime} rm -f {' '.join(left)}")
        self.state_file.unlink(missing_ok=True)
        self.state = None
