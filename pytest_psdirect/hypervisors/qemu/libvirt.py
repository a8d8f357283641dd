"""libvirt domains: :class:`LibvirtHost` implements
:class:`~pytest_psdirect.hypervisors.base.Hypervisor` with ``virsh`` (domstate, start, shutdown,
destroy, snapshot-create-as / snapshot-revert / snapshot-delete) and the guest agent through
``virsh qemu-agent-command``. Provisioning is left to libvirt's own tools (virt-install).

Example::

    >>> LibvirtHost("qemu:///session", timeout=30).uri
    'qemu:///session'
"""

from __future__ import annotations

import logging
import subprocess
import time

from ...credentials.secret import Credential
from ...errors import (
    CheckpointNotFound,
    PSDirectError,
    VMLifecycleError,
    VMNotFound,
    VMNotRunning,
    VMReadyTimeout,
)
from ..base import ProvisionSpec, VMStatus
from .channel import VirshChannel
from .guest import GuestAgent
from .machine import READY_HINT

log = logging.getLogger(__name__)
#: virsh domstate's words -> the states the plugin knows
_STATES = {"running": "Running", "paused": "Paused", "shut off": "Off", "pmsuspended": "Saved",
           "crashed": "Off", "in shutdown": "Running", "idle": "Running", "blocked": "Running"}


class LibvirtHost:
    """Domains of one libvirt connection (``qemu:///system`` or ``qemu:///session``)."""

    def __init__(self, uri: str, *, timeout: float, poll: float = 0.5) -> None:
        self.uri = uri
        self.timeout = timeout
        self.poll = poll

    def _virsh(self, *argv: str, domain: str) -> str:
        """``virsh -c URI ARGV...`` (values as argv items, never a shell); its stdout."""
        label = f"qemu://{domain}?connect={self.uri}"
        try:
            done = subprocess.run(["virsh", "-q", "-c", self.uri, *argv], capture_output=True,
                                  text=True, timeout=self.timeout, check=False,
                                  env={"LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        except FileNotFoundError:
            raise VMLifecycleError("virsh is not installed", target=label,
                                   hint="apt-get install libvirt-clients") from None
        except subprocess.TimeoutExpired:
            raise VMLifecycleError(f"virsh {argv[0]} took more than {self.timeout:g}s",
                                   target=label) from None
        if done.returncode != 0:
            text = done.stderr.strip().removeprefix("error: ")
            if "failed to get domain" in text or "Domain not found" in text:
                raise VMNotFound(f"libvirt has no such domain: {text}", target=label,
                                 hint="virsh list --all shows this connection's domains")
            if "snapshot" in text.lower() and "not" in text.lower():
                raise CheckpointNotFound(text, target=label,
                                         hint=f"virsh -c {self.uri} snapshot-list {domain}")
            raise VMLifecycleError(f"virsh {argv[0]} failed: {text}", target=label)
        return done.stdout

    def state(self, vm: str) -> VMStatus:
        word = self._virsh("domstate", "--domain", vm, domain=vm).strip().splitlines()[0]
        return VMStatus(_STATES.get(word, word))

    def start(self, vm: str) -> None:
        status = self.state(vm)
        if status.state == "Paused":
            self._virsh("resume", "--domain", vm, domain=vm)
        elif status.stopped:
            self._virsh("start", "--domain", vm, domain=vm)

    def stop(self, vm: str, *, force: bool = False) -> None:
        self._virsh("destroy" if force else "shutdown", "--domain", vm, domain=vm)

    def wait_ready(self, vm: str, timeout: float, credential: Credential | None) -> float:
        start, last = time.monotonic(), "no answer yet"
        agent = GuestAgent(VirshChannel(self.uri, vm, label=f"qemu://{vm}?connect={self.uri}"))
        while True:
            status = self.state(vm)
            if status.stopped:
                raise VMNotRunning(f"the domain is {status.state} while waiting for it",
                                   target=f"qemu://{vm}", hint="start it with --vm-start")
            try:
                agent.ping(timeout=2)
                return time.monotonic() - start
            except PSDirectError as exc:
                last = exc.message
            if time.monotonic() - start > timeout:
                raise VMReadyTimeout(f"the domain was not ready after {timeout:g}s (last seen: "
                                     f"{last})", target=f"qemu://{vm}", hint=READY_HINT)
            time.sleep(self.poll)

    def checkpoint(self, vm: str, name: str) -> None:
        self._virsh("snapshot-create-as", "--domain", vm, "--name", name, domain=vm)

    def restore(self, vm: str, name: str) -> None:
        self._virsh("snapshot-revert", "--domain", vm, "--snapshotname", name, "--running",
                    domain=vm)

    def remove_checkpoint(self, vm: str, name: str) -> None:
        self._virsh("snapshot-delete", "--domain", vm, "--snapshotname", name, domain=vm)

    def provision(self, spec: ProvisionSpec) -> tuple[str, str]:
        raise VMLifecycleError("--vm-provision is not supported for libvirt domains",
                               target=f"qemu://{spec.name}?connect={self.uri}",
                               hint="define the domain with virt-install (a qcow2 overlay: "
                                    "qemu-img create -b BASE), or provision without ?connect=")

    def destroy(self, vm: str, disk: str) -> None:
        raise VMLifecycleError("libvirt domains are not destroyed by the plugin",
                               target=f"qemu://{vm}?connect={self.uri}")

    def close(self) -> None:
        """Nothing is held between calls."""
