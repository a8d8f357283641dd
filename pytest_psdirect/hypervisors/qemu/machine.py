"""QEMU VMs the plugin starts itself, and their lifecycle: :class:`QemuHost` implements
:class:`~pytest_psdirect.hypervisors.base.Hypervisor` with QMP and the guest agent.

A VM is a folder ``ROOT/NAME/`` holding ``vm.json`` (kernel, initrd, disk, memory), its qcow2
disk (an overlay of a base image: the differencing-disk analogue), ``qmp.sock``, ``qga.sock``
(virtio-serial port ``org.qemu.guest_agent.0``), ``qemu.pid`` and ``console.log``. QEMU runs
with ``-accel tcg`` unless ``/dev/kvm`` is usable and ``PSDIRECT_QEMU_ACCEL`` says otherwise.
Checkpoints are qcow2 internal snapshots (RAM and disk) taken with the QMP ``snapshot-save``,
``snapshot-load`` and ``snapshot-delete`` jobs (QEMU >= 6.0).

Example::

    >>> vm = QemuVM("web01", Path("/srv/vms"))
    >>> str(vm.qga), qemu_argv(vm, VMConfig(disk="/srv/vms/web01/disk.qcow2"))[:3]
    ('/srv/vms/web01/qga.sock', ['qemu-system-x86_64', '-name', 'web01'])
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...credentials.secret import Credential
from ...errors import (
    CheckpointNotFound,
    PSDirectError,
    TargetSpecError,
    VMLifecycleError,
    VMNotFound,
    VMNotRunning,
    VMReadyTimeout,
)
from ..base import ProvisionSpec, VMStatus
from .channel import SocketChannel
from .guest import GuestAgent
from .protocol import AgentError

log = logging.getLogger(__name__)
DEFAULT_ROOT = Path(os.environ.get("PSDIRECT_QEMU_DIR") or (
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pytest-psdirect" / "qemu"
    / "vms"))
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
_SNAPSHOT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
DISK_NODE = "disk0"
AGENT_PORT = "org.qemu.guest_agent.0"
_STATES = {"running": "Running", "paused": "Paused", "suspended": "Paused", "prelaunch": "Starting",
           "inmigrate": "Starting", "restore-vm": "Starting", "save-vm": "Running",
           "finish-migrate": "Running", "shutdown": "Off", "guest-panicked": "Off"}
#: how long stop() waits for the guest to power off after ACPI powerdown before ending QEMU
GRACE = 20.0
READY_HINT = ("the guest may still be booting, or qemu-ga does not run in it: read the VM's "
              "console.log in its folder; raise --vm-ready-timeout if it is only slow")


def vm_folder(name: str, root: str | Path | None = None) -> Path:
    """``ROOT/NAME`` (ROOT: ``?dir=``, else :data:`DEFAULT_ROOT`); TargetSpecError for a name
    that is no plain file name."""
    if not _NAME.match(name):
        raise TargetSpecError(f"{name!r} is not a usable QEMU VM name here: letters, digits, '.', "
                              "'_', '-', not starting with '.'",
                              hint="or pass the agent socket: ?qga=PATH")
    return Path(os.path.expanduser(str(root))) / name if root else DEFAULT_ROOT / name


@dataclasses.dataclass(frozen=True)
class VMConfig:
    """How QEMU boots the VM: a disk, and a kernel + initrd for a direct kernel boot (else the
    disk's own boot loader)."""

    disk: str
    kernel: str = ""
    initrd: str = ""
    append: str = "console=ttyS0 panic=-1 quiet"
    memory: int = 256 * 2**20
    cpus: int = 1

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(dataclasses.asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> VMConfig:
        return cls(**json.loads(path.read_text()))


@dataclasses.dataclass(frozen=True)
class QemuVM:
    """A VM folder (see the module doc)."""

    name: str
    root: Path

    @property
    def folder(self) -> Path:
        return self.root / self.name

    qmp = property(lambda self: self.folder / "qmp.sock")
    qga = property(lambda self: self.folder / "qga.sock")
    pidfile = property(lambda self: self.folder / "qemu.pid")
    console = property(lambda self: self.folder / "console.log")
    config = property(lambda self: self.folder / "vm.json")

    @property
    def label(self) -> str:
        return f"qemu://{self.name}"


def qemu_argv(vm: QemuVM, config: VMConfig) -> list[str]:
    """The QEMU command line of ``vm``: QMP and agent sockets, the disk as node ``disk0``."""
    accel = os.environ.get("PSDIRECT_QEMU_ACCEL", "tcg")
    argv = ["qemu-system-x86_64", "-name", vm.name, "-accel", accel, "-m",
            f"{max(64, config.memory // 2**20)}M", "-smp", str(max(1, config.cpus)),
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-serial", f"file:{vm.console}",
            "-qmp", f"unix:{vm.qmp},server=on,wait=off",
            "-blockdev", f"driver=qcow2,node-name={DISK_NODE},file.driver=file,"
                         f"file.filename={config.disk.replace(',', ',,')}",
            "-device", f"virtio-blk-pci,drive={DISK_NODE}",
            "-device", "virtio-serial-pci",
            "-chardev", f"socket,id=qga0,path={vm.qga},server=on,wait=off",
            "-device", f"virtserialport,chardev=qga0,name={AGENT_PORT}"]
    if config.kernel:
        argv += ["-kernel", config.kernel, "-initrd", config.initrd, "-append", config.append]
    return argv


def qemu_pid(vm: QemuVM) -> int | None:
    """The PID of the VM's QEMU while it runs (its pid file and /proc agree), else None."""
    try:
        pid = int(vm.pidfile.read_text().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = fh.read().split(b"\0")
        with open(f"/proc/{pid}/stat") as fh:
            zombie = fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, ValueError, IndexError):
        return None
    return pid if not zombie and str(vm.qmp).encode() in b" ".join(argv) else None


def last_words(vm: QemuVM, size: int = 400) -> str:
    """The end of QEMU's own log and of the guest console, for an error message ("" if none)."""
    parts = []
    for path in (vm.folder / "qemu.log", vm.console):
        with contextlib.suppress(OSError):
            text = path.read_text(errors="replace").strip()
            if text:
                parts.append(f"{path.name}: ...{text[-size:]}")
    return f" ({'; '.join(parts)})" if parts else ""


class QemuHost:
    """The lifecycle of VM folders under one root, each call bounded by ``timeout``."""

    def __init__(self, root: Path | None = None, *, timeout: float, poll: float = 0.2,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.root = Path(root).expanduser() if root else DEFAULT_ROOT
        self.timeout = timeout
        self.poll = poll
        self._clock = clock
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    # -- QMP ------------------------------------------------------------------------------------
    def qmp(self, vm: QemuVM, command: str, arguments: dict[str, Any] | None = None) -> Any:
        """One QMP command on a fresh connection (QEMU serves one QMP client at a time)."""
        channel = SocketChannel(str(vm.qmp), label=vm.label, kind="qmp")
        channel.open(self.timeout)
        try:
            return channel.call(command, arguments, timeout=self.timeout)
        except AgentError as exc:
            raise VMLifecycleError(f"QMP {command} failed: {exc.desc}", target=vm.label) from None
        finally:
            channel.close()

    def _job(self, vm: QemuVM, kind: str, name: str) -> str | None:
        """Run a snapshot job to its end; its error text, or None."""
        if not _SNAPSHOT.match(name):
            raise VMLifecycleError(f"{name!r} is not a usable snapshot name (letters, digits, "
                                   "'.', '_', '-')", target=vm.label)
        job = f"psdirect-{kind}-{os.getpid()}-{time.monotonic_ns()}"
        args: dict[str, Any] = {"job-id": job, "tag": name, "devices": [DISK_NODE]}
        if kind != "snapshot-delete":
            args["vmstate"] = DISK_NODE
        channel = SocketChannel(str(vm.qmp), label=vm.label, kind="qmp")
        channel.open(self.timeout)
        try:
            channel.call(kind, args, timeout=self.timeout)
            deadline = self._clock() + self.timeout
            while True:
                jobs = channel.call("query-jobs", timeout=self.timeout)
                info = next((j for j in jobs if j.get("id") == job), None)
                if info is None or info.get("status") == "concluded":
                    break
                if self._clock() > deadline:
                    raise VMLifecycleError(f"{kind} {name} did not end in {self.timeout:g}s",
                                           target=vm.label)
                time.sleep(0.02)
            with contextlib.suppress(AgentError):
                channel.call("job-dismiss", {"id": job}, timeout=self.timeout)
            if info is not None and info.get("error"):
                return str(info["error"])
            return None
        except AgentError as exc:
            raise VMLifecycleError(f"QMP {kind} failed: {exc.desc}", target=vm.label) from None
        finally:
            channel.close()

    # -- Hypervisor -----------------------------------------------------------------------------
    def state(self, vm: QemuVM) -> VMStatus:
        if not vm.config.exists():
            raise VMNotFound(f"no QEMU VM {vm.name!r} in {vm.root} (no {vm.config.name})",
                             target=vm.label, hint="make it with --vm-provision, or psdirect "
                                                   "lab up --vm; ?dir= names another folder")
        if qemu_pid(vm) is None:
            return VMStatus("Off")
        status = self.qmp(vm, "query-status")
        return VMStatus(_STATES.get(str(status.get("status")), str(status.get("status"))))

    def start(self, vm: QemuVM) -> None:
        status = self.state(vm)
        if status.state == "Paused":
            self.qmp(vm, "cont")
            return
        if not status.stopped:
            return
        config = VMConfig.load(vm.config)
        for stale in (vm.qmp, vm.qga):
            stale.unlink(missing_ok=True)
        log.info("%s: starting QEMU", vm.label)
        with open(vm.folder / "qemu.log", "ab") as out:
            proc = subprocess.Popen(qemu_argv(vm, config), stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=out, start_new_session=True)
        vm.pidfile.write_text(f"{proc.pid}\n")
        self._children[vm.name] = proc
        deadline = self._clock() + self.timeout
        while not vm.qmp.exists():
            if proc.poll() is not None:
                raise VMLifecycleError(f"QEMU exited at once ({proc.returncode}){last_words(vm)}",
                                       target=vm.label)
            if self._clock() > deadline:
                raise VMLifecycleError("QEMU opened no QMP socket in time", target=vm.label)
            time.sleep(0.01)

    def stop(self, vm: QemuVM, *, force: bool = False) -> None:
        pid = qemu_pid(vm)
        if pid is None:
            return
        with contextlib.suppress(PSDirectError):
            self.qmp(vm, "quit" if force else "system_powerdown")
        deadline = self._clock() + (2.0 if force else min(self.timeout, GRACE))
        while qemu_pid(vm) is not None and self._clock() < deadline:
            self._reap(vm)
            time.sleep(0.05)
        if qemu_pid(vm) is not None:  # no ACPI in the guest, or QMP gone: end the process
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._reap(vm, wait=True)

    def _reap(self, vm: QemuVM, *, wait: bool = False) -> None:
        proc = self._children.get(vm.name)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=2 if wait else 0.001)
            if proc.returncode is not None:
                del self._children[vm.name]

    def wait_ready(self, vm: QemuVM, timeout: float, credential: Credential | None) -> float:
        """Until the agent answers guest-sync-delimited and guest-ping (no credential needed)."""
        start = self._clock()
        last = "no answer yet"
        while True:
            status = self.state(vm)
            if status.stopped:
                raise VMNotRunning(f"the VM is {status.state} while waiting for it to be ready"
                                   f"{last_words(vm)}", target=vm.label,
                                   hint="start it with --vm-start")
            remaining = start + timeout - self._clock()
            channel = SocketChannel(str(vm.qga), label=vm.label, kind="qga")
            try:
                channel.open(max(0.2, min(2.0, remaining)))
                GuestAgent(channel).ping(timeout=max(0.2, min(2.0, remaining)))
                waited = self._clock() - start
                log.info("%s: agent answered after %.1fs", vm.label, waited)
                return waited
            except PSDirectError as exc:
                last = exc.message
            finally:
                channel.close()
            remaining = start + timeout - self._clock()
            if remaining <= 0:
                raise VMReadyTimeout(f"the VM was not ready after {timeout:g}s (last seen: "
                                     f"{last})", target=vm.label, hint=READY_HINT)
            time.sleep(min(self.poll, remaining))

    def checkpoint(self, vm: QemuVM, name: str) -> None:
        log.info("%s: snapshot-save %s", vm.label, name)
        error = self._job(vm, "snapshot-save", name)
        if error:
            raise VMLifecycleError(f"snapshot-save {name} failed: {error}", target=vm.label)

    def restore(self, vm: QemuVM, name: str) -> None:
        log.info("%s: snapshot-load %s", vm.label, name)
        error = self._job(vm, "snapshot-load", name)
        if error:
            with contextlib.suppress(PSDirectError):
                self.qmp(vm, "cont")  # a failed load leaves the VM stopped
            if "does not exist" in error:
                raise CheckpointNotFound(error, target=vm.label,
                                         hint=f"list them: qemu-img snapshot -l {vm.folder}/"
                                              "disk.qcow2 (with the VM off)")
            raise VMLifecycleError(f"snapshot-load {name} failed: {error}", target=vm.label)

    def remove_checkpoint(self, vm: QemuVM, name: str) -> None:
        log.info("%s: snapshot-delete %s", vm.label, name)
        error = self._job(vm, "snapshot-delete", name)
        if error:
            raise CheckpointNotFound(error, target=vm.label) if "not" in error.lower() else \
                VMLifecycleError(f"snapshot-delete {name} failed: {error}", target=vm.label)

    def provision(self, spec: ProvisionSpec) -> tuple[QemuVM, str]:
        """A VM folder with a qcow2 overlay of ``spec.template``; a ``vmlinuz`` and
        ``initrd.img`` beside the template (psdirect's guest image) are booted directly."""
        base = Path(spec.template).expanduser().resolve()
        vm = QemuVM(spec.name, self.root)
        vm_folder(spec.name, vm.root)  # a bad name is refused
        if not base.is_file():
            raise VMLifecycleError(f"the template {base} does not exist", target=vm.label,
                                   hint="template= names a qcow2 base image")
        if vm.config.exists():
            raise VMLifecycleError(f"a VM {spec.name!r} exists already in {vm.root}",
                                   target=vm.label, hint="psdirect lab down, or name= another")
        vm.folder.mkdir(parents=True, exist_ok=True)
        disk = vm.folder / "disk.qcow2"
        done = subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                               str(base), str(disk)], capture_output=True, text=True,
                              timeout=self.timeout, check=False)
        if done.returncode != 0:
            shutil.rmtree(vm.folder, ignore_errors=True)
            raise VMLifecycleError(f"qemu-img create failed: {done.stderr.strip()}",
                                   target=vm.label)
        kernel, initrd = base.parent / "vmlinuz", base.parent / "initrd.img"
        direct = kernel.exists() and initrd.exists()
        VMConfig(str(disk), str(kernel) if direct else "", str(initrd) if direct else "",
                 memory=spec.memory, cpus=spec.cpus or 1).save(vm.config)
        log.info("%s: provisioned on an overlay of %s", vm.label, base)
        return vm, str(disk)

    def destroy(self, vm: QemuVM, disk: str) -> None:
        """Power off, delete the VM's folder (its overlay disk; never the template)."""
        self.stop(vm, force=True)
        for name in ("disk.qcow2", "vm.json", "qmp.sock", "qga.sock", "qemu.pid", "console.log",
                     "qemu.log"):
            (vm.folder / name).unlink(missing_ok=True)
        Path(disk).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            vm.folder.rmdir()

    def close(self) -> None:
        """Nothing is held between calls (VMs keep running until destroyed or stopped)."""
