"""The lab's QEMU VM: psdirect's small guest (:mod:`.qemu_image`) on a qcow2 overlay, started
with its agent socket, reached as ``qemu://NAME?dir=FOLDER``. The tests use this same class.

Example::

    lab = QemuLab(Path(".lab/qemu"))
    url = lab.up()            # 'qemu://psdirect-vm?dir=/abs/.lab/qemu' once the agent answers
    ...
    lab.down()                # QEMU ended (by PID), its folder removed; the cached image stays
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from ..errors import PSDirectError
from ..hypervisors.base import ProvisionSpec
from ..hypervisors.qemu.machine import QemuHost, QemuVM, qemu_pid
from ..targets import Target
from . import LabError
from .qemu_image import build_image, missing_facilities

log = logging.getLogger(__name__)
VM_NAME = "psdirect-vm"
__all__ = ["QemuLab", "missing_facilities"]


class QemuLab:
    """One VM in ``folder`` (absolute), provisioned from the cached guest image."""

    def __init__(self, folder: Path, *, name: str = VM_NAME, memory: int = 256 * 2**20,
                 ready_timeout: float = 120.0) -> None:
        self.folder = folder.resolve()
        self.name = name
        self.memory = memory
        self.ready_timeout = ready_timeout
        self.host = QemuHost(self.folder, timeout=30.0)
        self.boot_seconds = 0.0

    @property
    def vm(self) -> QemuVM:
        return QemuVM(self.name, self.folder)

    @property
    def url(self) -> str:
        """The target URL of the VM."""
        return Target("qemu", self.name, options=(("dir", str(self.folder)),)).url

    def up(self) -> str:
        """Build (or reuse) the image, provision and start the VM, wait for its agent: the URL."""
        if qemu_pid(self.vm) is not None:
            raise LabError(f"a lab VM runs already in {self.folder}",
                           hint=f"psdirect lab down --dir {self.folder.parent}")
        if self.vm.config.exists():  # a stale record (QEMU gone): start afresh
            self.host.destroy(self.vm, str(self.vm.folder / "disk.qcow2"))
        image = build_image()
        self.host.provision(ProvisionSpec(str(image.base_disk), self.name, memory=self.memory))
        began = time.monotonic()
        try:
            self.host.start(self.vm)
            self.host.wait_ready(self.vm, self.ready_timeout, None)
        except PSDirectError:
            self.down()
            raise
        self.boot_seconds = time.monotonic() - began
        log.info("%s: up after %.1fs", self.url, self.boot_seconds)
        return self.url

    def down(self) -> None:
        """End QEMU (QMP quit, then SIGKILL by its PID) and remove the VM's folder."""
        if self.vm.config.exists() or self.vm.folder.exists():
            self.host.destroy(self.vm, str(self.vm.folder / "disk.qcow2"))
        if qemu_pid(self.vm) is not None:
            raise LabError(f"QEMU of {self.url} still runs", hint="kill the PID in qemu.pid")
