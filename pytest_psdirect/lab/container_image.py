"""Container images for the lab and the tests, built offline and cached by their inputs.

Two images, both ``podman import``-ed from a root file system made on this machine (no registry):

* ``debian``: ``debootstrap --variant=minbase bookworm`` plus ``python3`` (the command
  agent runs on it) and ``procps`` (testinfra's process module uses ``ps``); ~35 s, from the
  Debian mirror apt uses;
* ``busybox``: ``busybox-static`` copied from this machine, no python (one exec per command).

The tag is ``localhost/psdirect-<kind>:<key>``, ``key`` a hash of the recipe (suite, packages,
this file's build steps), so a changed recipe builds a new image and an unchanged one is reused.
The root file system's tarball is kept in ``~/.cache/psdirect/images`` too, so a wiped podman
store re-imports it in a second instead of running debootstrap again.

Usage::

    python -m pytest_psdirect.lab.container_image debian     # prints the image's tag
    >>> image_tag("busybox").startswith("localhost/psdirect-busybox:")
    True
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from . import LabError

log = logging.getLogger(__name__)
SUITE = "bookworm"
DEBIAN_PACKAGES = ("python3", "procps")
BUSYBOX = "/bin/busybox"
KINDS = ("debian", "busybox")
#: bump when a build step changes in a way the inputs above do not show
RECIPE_VERSION = "1"
_MIRROR_ENV = "PSDIRECT_DEBIAN_MIRROR"


def cache_dir() -> Path:
    """Where root file system tarballs are kept (``$XDG_CACHE_HOME/psdirect/images``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "psdirect" / "images"


def _key(kind: str) -> str:
    if kind == "debian":
        recipe = f"{RECIPE_VERSION}|{SUITE}|minbase|{','.join(DEBIAN_PACKAGES)}"
    elif kind == "busybox":
        recipe = f"{RECIPE_VERSION}|{_sha256(BUSYBOX) if os.path.exists(BUSYBOX) else 'none'}"
    else:
        raise LabError(f"unknown image kind {kind!r}", hint=f"use one of {', '.join(KINDS)}")
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def image_tag(kind: str) -> str:
    """The tag the image of ``kind`` gets (a new one whenever its recipe changes)."""
    return f"localhost/psdirect-{kind}:{_key(kind)}"


def ensure_image(kind: str, podman: str = "podman") -> str:
    """Return the tag of the ``kind`` image, importing or building it first when needed."""
    tag = image_tag(kind)
    if _podman(podman, "image", "exists", tag).returncode == 0:
        return tag
    tarball = cache_dir() / f"{kind}-{_key(kind)}.tar"
    if not tarball.exists():
        tarball.parent.mkdir(parents=True, exist_ok=True)
        _build_rootfs_tar(kind, tarball)
    proc = _podman(podman, "import", "--change", "CMD=/bin/sh", str(tarball), tag)
    if proc.returncode != 0:
        raise LabError(f"podman import of {tarball} failed: {proc.stderr.strip()}",
                       hint="check `podman info`; delete the tarball to rebuild it")
    return tag


def _build_rootfs_tar(kind: str, tarball: Path) -> None:
    with tempfile.TemporaryDirectory(prefix=f"psd-{kind}-") as tmp:
        root = Path(tmp) / "root"
        if kind == "debian":
            _debootstrap(root)
        else:
            _busybox_root(root)
        part = tarball.with_suffix(".part")
        proc = subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(part), "."],
                              capture_output=True, text=True, check=False, timeout=300)
        if proc.returncode != 0:
            part.unlink(missing_ok=True)
            raise LabError(f"tar of the {kind} root failed: {proc.stderr.strip()[-500:]}",
                           hint=f"is there room in {tarball.parent}? (`df -h`)")
        part.replace(tarball)


def _debootstrap(root: Path) -> None:
    if shutil.which("debootstrap") is None:
        raise LabError("building the debian test image needs debootstrap",
                       hint="apt-get install debootstrap")
    mirror = os.environ.get(_MIRROR_ENV, "http://deb.debian.org/debian")
    log.info("debootstrap %s into %s (about 35 s)", SUITE, root)
    proc = subprocess.run(["debootstrap", "--variant=minbase",
                           f"--include={','.join(DEBIAN_PACKAGES)}", SUITE, str(root), mirror],
                          capture_output=True, text=True, check=False, timeout=900)
    if proc.returncode != 0:
        raise LabError(f"debootstrap failed: {(proc.stdout + proc.stderr).strip()[-800:]}",
                       hint=f"is the mirror {mirror} reachable? set {_MIRROR_ENV} to another")
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for path in (root / junk).glob("*"):
            if path.is_file():
                path.unlink()


def _busybox_root(root: Path) -> None:
    """/bin/busybox with its applets as links, /etc/passwd and /etc/group for root: no python."""
    if not os.path.exists(BUSYBOX):
        raise LabError(f"building the busybox test image needs {BUSYBOX}",
                       hint="apt-get install busybox-static")
    for sub in ("bin", "etc", "tmp", "root", "proc", "sys", "dev"):
        (root / sub).mkdir(parents=True)
    (root / "tmp").chmod(0o1777)
    shutil.copy(BUSYBOX, root / "bin/busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True,
                             timeout=30).stdout.split()
    for applet in applets:
        if applet != "busybox":
            (root / "bin" / applet).symlink_to("busybox")
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\n")


def _podman(podman: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([podman, *args], capture_output=True, text=True, check=False,
                          timeout=300)


def _sha256(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


if __name__ == "__main__":  # pragma: no cover - the script form used by .ci/run
    logging.basicConfig(level=logging.INFO)
    for name in sys.argv[1:] or list(KINDS):
        print(ensure_image(name))
