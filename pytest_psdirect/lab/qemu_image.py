"""A small QEMU guest built from this machine's Debian packages, cached between runs.

The guest is an initramfs: ``busybox-static``, ``qemu-ga`` (from ``qemu-guest-agent``, with the
shared libraries ``ldd`` names), the virtio modules ``insmod``-ed in dependency order, and an
``/init`` that mounts the root disk (``/dev/vda``, ext4, at ``/data``) and runs the agent on the
virtio-serial port ``org.qemu.guest_agent.0``. The kernel is Debian's ``linux-image-amd64``.
The base disk is a qcow2 whose ext4 filesystem is made offline (``mkfs.ext4 -d``, no mount),
so VMs get qcow2 overlays of it (the differencing-disk analogue) and internal snapshots.

Everything lands in ``~/.cache/pytest-psdirect/qemu/<hash of the inputs>/`` and is reused while
the inputs (kernel, busybox, qemu-ga, this file's init script) are the same.

Example::

    >>> image = build_image()                               # doctest: +SKIP
    >>> image.kernel.name, image.initrd.name, image.base_disk.name   # doctest: +SKIP
    ('vmlinuz', 'initrd.img', 'base.qcow2')
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import LabError

log = logging.getLogger(__name__)
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pytest-psdirect" / "qemu"
BUSYBOX = "/bin/busybox"
QEMU_GA = "/usr/sbin/qemu-ga"
#: Debian packages the image is made of (named in errors)
PACKAGES = ("linux-image-amd64", "busybox-static", "qemu-guest-agent", "qemu-utils",
            "qemu-system-x86", "e2fsprogs")
#: insmod order: each module after those it needs (modules.dep)
MODULES = ("drivers/virtio/virtio_ring", "drivers/virtio/virtio", "drivers/virtio/virtio_pci_legacy_dev",
           "drivers/virtio/virtio_pci_modern_dev", "drivers/virtio/virtio_pci",
           "drivers/char/virtio_console", "drivers/block/virtio_blk", "crypto/crc32c_generic",
           "lib/crc16", "fs/mbcache",
           "fs/jbd2/jbd2", "fs/ext4/ext4")
#: the agent's virtio-serial port name, as libvirt and QEMU's docs name it
AGENT_PORT = "org.qemu.guest_agent.0"
BASE_DISK_SIZE = "64M"

INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/sbin:/bin:/usr/sbin:/usr/bin HOME=/root
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs dev /dev
mkdir -p /dev/pts /tmp /run /var/run /data /root; mount -t devpts devpts /dev/pts
mount -t tmpfs tmp /tmp
for m in $(cat /modules.order); do insmod "/modules/$m.ko"; done
hostname "$(cat /etc/hostname)"
[ -b /dev/vda ] && mount -t ext4 /dev/vda /data
port=""
for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
  for n in /sys/class/virtio-ports/*/name; do
    [ "$(cat "$n" 2>/dev/null)" = "@PORT@" ] && port=/dev/$(basename "$(dirname "$n")")
  done
  [ -n "$port" ] && [ -e "$port" ] && break
  sleep 0.1
done
echo "psdirect-guest: agent port ${port:-missing}"
while true; do
  qemu-ga -m virtio-serial -p "$port" -t /run
  echo "psdirect-guest: qemu-ga exited $?, restarting"; sleep 1
done
""".replace("@PORT@", AGENT_PORT)

FILES = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    "etc/group": "root:x:0:\nnogroup:x:65534:\n",
    "etc/hostname": "psdirect-guest\n",
    "etc/os-release": 'NAME="psdirect guest"\nID=busybox\nPRETTY_NAME="psdirect busybox guest"\n',
    # busybox has no getent; testinfra's user and group modules call it
    "usr/bin/getent": '#!/bin/sh\ndb=$1; shift; f=/etc/$db; [ -r "$f" ] || exit 1\n'
                      '[ $# -eq 0 ] && exec cat "$f"\nrc=2\nfor k; do\n'
                      '  awk -F: -v k="$k" \'$1 == k || $3 == k { print; found = 1 } '
                      'END { exit !found }\' "$f" && rc=0\ndone\nexit $rc\n',
}


@dataclass(frozen=True)
class GuestImage:
    """The files a VM boots from: kernel, initramfs, and the base disk overlays are made of."""

    kernel: Path
    initrd: Path
    base_disk: Path


def missing_facilities() -> str | None:
    """Why the image cannot be built or booted here, or None."""
    for tool in ("qemu-system-x86_64", "qemu-img", "mkfs.ext4"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install {' '.join(PACKAGES)})"
    for path in (BUSYBOX, QEMU_GA):
        if not os.path.exists(path):
            return f"{path} is missing (apt-get install {' '.join(PACKAGES)})"
    try:
        kernel_version()
    except LabError as exc:
        return exc.message
    return None


def kernel_version() -> str:
    """The newest kernel in /boot with its modules and a readable vmlinuz."""
    found = []
    for vmlinuz in Path("/boot").glob("vmlinuz-*"):
        version = vmlinuz.name.removeprefix("vmlinuz-")
        if (Path("/lib/modules") / version / "modules.dep").exists() and os.access(vmlinuz, os.R_OK):
            found.append(version)
    if not found:
        raise LabError("no readable /boot/vmlinuz-* with its /lib/modules found",
                       hint="apt-get install linux-image-amd64 (and run as root: vmlinuz is 0600)")
    return max(found, key=lambda v: [int(p) if p.isdigit() else p for p in re.split(r"[.-]", v)])


def _libraries(binary: str) -> list[Path]:
    """The shared libraries ``binary`` loads (``ldd``), the dynamic loader included."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True,
                         timeout=30).stdout
    libs = []
    for line in out.splitlines():
        match = re.search(r"(/\S+) \(0x", line)
        if match:
            libs.append(Path(match.group(1)))
    return libs


def _inputs_key(version: str) -> str:
    """A hash of everything the image is made of: file identities, the init script, modules."""
    digest = hashlib.sha256(INIT.encode())
    digest.update(repr(sorted(FILES.items())).encode() + repr(MODULES).encode())
    for path in [Path(f"/boot/vmlinuz-{version}"), Path(BUSYBOX), Path(QEMU_GA),
                 *_libraries(QEMU_GA)]:
        st = path.stat()
        digest.update(f"{path}:{st.st_size}:{st.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def build_image(cache: Path = CACHE) -> GuestImage:
    """Build the guest (or reuse the cached one); LabError with the packages to install."""
    why = missing_facilities()
    if why:
        raise LabError(f"cannot build the QEMU guest: {why}")
    version = kernel_version()
    folder = cache / _inputs_key(version)
    image = GuestImage(folder / "vmlinuz", folder / "initrd.img", folder / "base.qcow2")
    if all(p.exists() for p in (image.kernel, image.initrd, image.base_disk)):
        return image
    log.info("building the QEMU guest image in %s", folder)
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="build-", dir=cache))
    try:
        shutil.copyfile(f"/boot/vmlinuz-{version}", work / "vmlinuz")
        _initramfs(work / "root", version, work / "initrd.img")
        _base_disk(work / "disk", work / "base.qcow2")
        for scratch in ("root", "disk"):
            shutil.rmtree(work / scratch)
        with contextlib.suppress(FileExistsError, OSError):
            work.rename(folder)  # atomic: a concurrent build that won leaves ours to delete
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not image.initrd.exists():
        raise LabError(f"building the QEMU guest in {folder} failed")
    return image


def _initramfs(root: Path, version: str, out: Path) -> None:
    """Lay out the guest's files in ``root`` and pack them with ``busybox cpio -H newc``."""
    for sub in ("bin", "sbin", "etc", "proc", "sys", "dev", "modules", "usr/bin", "usr/sbin"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, root / "bin/busybox")
    shutil.copy2(QEMU_GA, root / "usr/sbin/qemu-ga")
    for lib in _libraries(QEMU_GA):
        dest = root / lib.relative_to("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(lib.resolve(), dest)
    modules = Path("/lib/modules") / version / "kernel"
    names = []
    for module in MODULES:
        name = module.rsplit("/", 1)[-1]
        shutil.copy2(modules / f"{module}.ko", root / "modules" / f"{name}.ko")
        names.append(name)
    (root / "modules.order").write_text("\n".join(names) + "\n")
    for rel, text in FILES.items():
        (root / rel).write_text(text)
        (root / rel).chmod(0o755 if "bin/" in rel else 0o644)
    (root / "init").write_text(INIT)
    (root / "init").chmod(0o755)
    listing = "\n".join(str(p.relative_to(root)) for p in sorted(root.rglob("*"))) + "\n"
    packed = subprocess.run([BUSYBOX, "cpio", "-o", "-H", "newc"], cwd=root, input=listing.encode(),
                            capture_output=True, check=False, timeout=120)
    if packed.returncode != 0:
        raise LabError(f"busybox cpio failed: {packed.stderr.decode(errors='replace')[-500:]}")
    with gzip.open(out, "wb", compresslevel=1) as fh:
        fh.write(packed.stdout)


def _base_disk(content: Path, out: Path) -> None:
    """An ext4 filesystem made offline from ``content`` (no mount), converted to qcow2."""
    content.mkdir()
    (content / "base.txt").write_text("made by pytest-psdirect's image builder\n")
    raw = out.with_suffix(".raw")
    steps = [["mkfs.ext4", "-q", "-F", "-O", "^metadata_csum,^64bit", "-L", "psdirect",
              "-d", str(content), str(raw), BASE_DISK_SIZE],
             ["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(out)]]
    for argv in steps:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
        if done.returncode != 0:
            raise LabError(f"{argv[0]} failed: {done.stderr.strip()[-500:]}")
    raw.unlink()
