"""VM lifecycle in a run: the VM's state before its first test, readiness, checkpoint markers.

Before the first test of a ``vm://``/``vmid://`` target, the Hyper-V host is asked for the VM's
state: Off, Saved or Paused makes every test of that target error at once (naming the state and
``--vm-start``), or, with ``--vm-start``, the VM is started; then the run waits (bounded by
``--vm-ready-timeout``) until the Heartbeat integration service is OK and a PowerShell Direct
probe answers.

``@pytest.mark.checkpoint("clean")`` restores the VM's checkpoint "clean" before the test (before
the module's or class's first test when placed there; ``after=True`` restores it again after).
``@pytest.mark.checkpoint(take=True)`` (or ``@pytest.mark.destructive``) takes a temporary
checkpoint before the test and, after it (also when it failed), restores and removes it. A
restore leaves the VM off or saved, so it is started and waited for again, and the target's
session reopens. ``--keep-vm`` leaves a failed test's VM as the test left it (no restore after,
the temporary checkpoint kept) and says what was kept.

``--vm-provision template=PATH,...`` makes a VM for the run (New-VHD -Differencing on the template
disk, New-VM), adds it as a ``vm://`` target, starts it before its first test and removes it and
its disk at the end of the run (kept with ``--keep-vm`` when one of its tests failed).

``qemu://`` targets (``--hypervisor qemu``, :mod:`.qemu_options`) get the same steps from
:class:`~pytest_psdirect.hypervisors.qemu.machine.QemuHost` (VM folders the plugin starts: QMP
snapshot jobs, qcow2 overlays) or :class:`~pytest_psdirect.hypervisors.qemu.libvirt.LibvirtHost`
(``?connect=``: virsh); readiness is the guest agent answering, no credential needed.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
from _pytest import nodes

from ..credentials.secret import Credential
from ..errors import ConnectFailed, PSDirectError, TransportUnavailable, VMLifecycleError
from ..hypervisors.base import Hypervisor, ProvisionSpec, parse_provision
from ..hypervisors.hyperv.nested import VMRef
from ..settings import validate_timeout
from ..targets import LIFECYCLE_SCHEMES, Target
from .options import _option_type
from .state import POOL, REGISTRY, SETTINGS, fail_with

log = logging.getLogger(__name__)
DEFAULT_READY_TIMEOUT = 300.0
CALL_FAILED = pytest.StashKey[bool]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("psdirect")
    group.addoption("--vm-start", action="store_true", default=False,
                    help="start VM targets that are Off, Saved or Paused (default: their tests "
                         "error)")
    group.addoption("--vm-ready-timeout", metavar="SECONDS", default=None,
                    type=_option_type(validate_timeout, "--vm-ready-timeout"),
                    help="how long to wait for a VM to be ready: heartbeat OK and a PowerShell "
                         f"Direct probe answering (default {DEFAULT_READY_TIMEOUT:g}; ini "
                         "psdirect_vm_ready_timeout)")
    parser.addini("psdirect_vm_ready_timeout", "default of --vm-ready-timeout (seconds)",
                  default=str(DEFAULT_READY_TIMEOUT))
    group.addoption("--keep-vm", action="store_true", default=False,
                    help="after a failed test, leave its VM as the test left it (no restore, "
                         "temporary checkpoints kept, a provisioned VM not destroyed)")
    group.addoption("--vm-provision", action="append", default=[], metavar="SPEC",
                    type=_option_type(_provision, "--vm-provision"),
                    help="make a VM for the run on the Hyper-V host from a template disk "
                         "(differencing disk), destroyed after the run: 'template=PATH[,name=NAME]"
                         "[,switch=SWITCH][,memory=2G][,generation=2][,cpus=N]' (repeatable); "
                         "with --hypervisor qemu a qcow2 overlay of the template")


def ready_timeout(config: pytest.Config) -> float:
    """--vm-ready-timeout, else the ini key, else 300; a bad ini value is a usage error."""
    given = config.getoption("vm_ready_timeout")
    if given is not None:
        return float(given)
    try:
        return validate_timeout(config.getini("psdirect_vm_ready_timeout"),
                                "psdirect_vm_ready_timeout (ini)")
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def _provision(text: str, name: str) -> ProvisionSpec:
    return parse_provision(text)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "checkpoint(name=None, *, after=False, take=False): restore the VM "
                   "checkpoint NAME before the test, module or class (after=True: also after); "
                   "take=True: checkpoint before the test, restore and remove it after")
    config.addinivalue_line(
        "markers", "destructive: the test changes its VM: checkpoint(take=True)")
    config.pluginmanager.register(VMLifecycle(config), "psdirect-vm-lifecycle")


@dataclasses.dataclass(frozen=True)
class Plan:
    """What one test asks of its VM's checkpoints."""

    restore: str | None = None
    after: bool = False
    take: bool = False
    scope: nodes.Node | None = None  # a module or class: once for all its tests


def plan_for(item: pytest.Item) -> Plan:
    if item.get_closest_marker("destructive") is not None:
        return Plan(take=True)
    for node, mark in item.iter_markers_with_node("checkpoint"):
        name = mark.args[0] if mark.args else mark.kwargs.get("name")
        take = bool(mark.kwargs.get("take", False))
        if (name is None) == (not take):
            raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.checkpoint needs a checkpoint "
                                    "name or take=True (one of the two)")
        scope = None if node is item or take else node
        return Plan(str(name) if name is not None else None,
                    bool(mark.kwargs.get("after", False)), take, scope)
    return Plan()


def _target(item: pytest.Item) -> Target | None:
    callspec = getattr(item, "callspec", None)
    spec = callspec.params.get("_psdirect_target") if callspec else None
    return spec if isinstance(spec, Target) and spec.scheme in LIFECYCLE_SCHEMES else None


class VMLifecycle:
    """Per-run state: one HyperVHost per Hyper-V host, each VM's readiness, checkpoints taken."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.start = bool(config.getoption("vm_start"))
        self.ready_timeout = ready_timeout(config)
        self.keep = bool(config.getoption("keep_vm"))
        self._hosts: dict[tuple[str, str], Hypervisor[Any]] = {}
        self._ready: dict[str, PSDirectError | None] = {}
        self._scopes_done: set[tuple[str, str]] = set()
        self._temporary: dict[str, str] = {}  # item nodeid -> checkpoint name
        self.kept: list[str] = []
        self._to_provision = {s.name: s for s in config.getoption("vm_provision")}
        self._provisioned: dict[str, tuple[Target, Any, str]] = {}  # url -> (target, vm, disk)
        self._failed: set[str] = set()  # urls of targets with a failed test
        self.destroyed: list[str] = []

    # -- plumbing -------------------------------------------------------------------------------
    def hypervisor(self, target: Target) -> Hypervisor[Any]:
        """The hypervisor of ``target``: its Hyper-V host, the plugin's QEMU VMs folder, or a
        libvirt connection. VMLifecycleError for a qemu:// target given only by its socket."""
        if target.scheme == "qemu":
            return self._qemu(target)
        from ..credentials.providers import resolve_reference
        from ..hypervisors.hyperv.lifecycle import HyperVHost
        from ..transports.psdirect import hyperv_host_target

        key = (target.option("host") or "", target.option("host_credential") or "")
        if key not in self._hosts:
            host = hyperv_host_target(key[0] or None)
            credential = resolve_reference(key[1], Path.cwd()) if key[1] else None
            settings = self.config.stash[SETTINGS]
            transport = self.config.stash[REGISTRY].get(host.scheme)(host, credential, settings)
            self._hosts[key] = HyperVHost(transport, timeout=settings.command_timeout)
        return self._hosts[key]

    def _qemu(self, target: Target) -> Hypervisor[Any]:
        from ..hypervisors.qemu.libvirt import LibvirtHost
        from ..hypervisors.qemu.machine import QemuHost

        if target.option("qga"):
            raise VMLifecycleError("a VM given by its agent socket (?qga=) has no lifecycle here",
                                   target=target.url,
                                   hint="name its folder (?dir=, --qemu-dir) or its libvirt "
                                        "connection (?connect=) for checkpoints and --vm-start")
        timeout = self.config.stash[SETTINGS].command_timeout
        connect = target.option("connect")
        key = ("libvirt", connect) if connect else ("qemu", target.option("dir") or "")
        if key not in self._hosts:
            self._hosts[key] = (LibvirtHost(connect, timeout=timeout) if connect else
                                QemuHost(Path(key[1]) if key[1] else None, timeout=timeout))
        return self._hosts[key]

    def _credential(self, target: Target) -> Credential | None:
        """The guest credential for the readiness probe, if one is given explicitly (never a
        keyring look-up or a prompt here: the target's session asks for those, once)."""
        found: Credential | None = self.config.hook.pytest_psdirect_credential(
            target=target, config=self.config, required=False)
        return found

    def _vm(self, target: Target) -> Any:
        if target.scheme == "qemu":
            from ..hypervisors.qemu.machine import QemuHost, QemuVM

            host = self.hypervisor(target)
            return QemuVM(target.vm_name, host.root) if isinstance(host, QemuHost) else \
                target.vm_name
        from ..transports.psdirect import vm_ref

        return vm_ref(target)

    # -- steps ------------------------------------------------------------------------------------
    def ensure_ready(self, target: Target) -> None:
        """Once per target: its state, --vm-start, readiness. A failure is kept for its tests."""
        if target.url not in self._ready:
            try:
                if not (target.scheme == "qemu" and target.option("qga")):  # a bare socket:
                    self._bring_up(target, starting=self.start)  # no lifecycle to drive
                self._ready[target.url] = None
            except (TransportUnavailable, ConnectFailed) as exc:
                if type(exc) not in (ConnectFailed, TransportUnavailable):
                    self._ready[target.url] = exc
                else:  # the host is unreachable: the target's session says so, with its hint
                    log.warning("%s: VM state not checked: %s", target.url, exc)
                    self._ready[target.url] = None
            except PSDirectError as exc:
                exc.target = target.url
                self._ready[target.url] = exc
        error = self._ready[target.url]
        if error is not None:
            pytest.fail(f"{type(error).__name__}: {error}", pytrace=False)

    def _bring_up(self, target: Target, *, starting: bool) -> None:
        from ..errors import VMNotRunning

        hv, vm = self.hypervisor(target), self._vm(target)
        spec = self._to_provision.get(target.vm_name) if target.scheme in ("vm", "qemu") else None
        if spec is not None and target.url not in self._provisioned:
            made, disk = hv.provision(spec)
            self._provisioned[target.url] = (target, made, disk)
            starting = True  # ours: start it
        status = hv.state(vm)
        if status.stopped:
            if not starting:
                raise VMNotRunning(f"the VM is {status.state}: not started (pass --vm-start to "
                                   "start it)", target=target.url)
            log.info("%s: VM is %s, starting it", target.url, status.state)
            hv.start(vm)
        waited = hv.wait_ready(vm, self.ready_timeout, self._credential(target))
        log.info("%s: VM ready (%.1fs)", target.url, waited)

    def restore(self, target: Target, name: str) -> None:
        """Back to checkpoint ``name``, started, ready; the target's session reopens."""
        hv, vm = self.hypervisor(target), self._vm(target)
        hv.restore(vm, name)
        self._reset_session(target)
        self._bring_up(target, starting=True)  # a restore leaves it Off/Saved: ours to start

    def _reset_session(self, target: Target) -> None:
        pool = self.config.stash.get(POOL, None)
        session = pool.peek(target) if pool is not None else None
        if session is not None:
            session.close()  # its guest session ended with the restore; the next call reopens

    # -- hooks ------------------------------------------------------------------------------------
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """A checkpoint marker without a name or take=True is a usage error before any test."""
        for item in items:
            plan_for(item)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        target = _target(item)
        if target is None:
            return
        self.ensure_ready(target)
        plan = plan_for(item)
        try:
            if plan.restore is not None:
                key = (plan.scope.nodeid if plan.scope else item.nodeid, target.url)
                if plan.scope is None or key not in self._scopes_done:
                    self._scopes_done.add(key)
                    self.restore(target, plan.restore)
            if plan.take:
                name = f"psdirect-{secrets.token_hex(4)}"
                self.hypervisor(target).checkpoint(self._vm(target), name)
                self._temporary[item.nodeid] = name
        except PSDirectError as exc:
            exc.target = target.url
            fail_with(exc)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item,
                                  call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport,
                                                                            pytest.TestReport]:
        report = yield
        if report.failed:
            item.stash[CALL_FAILED] = True
            target = _target(item)
            if target is not None:
                self._failed.add(target.url)
        return report

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_teardown(self, item: pytest.Item, nextitem: pytest.Item | None) -> None:
        target = _target(item)
        if target is None:
            return
        plan = plan_for(item)
        failed = item.stash.get(CALL_FAILED, False)
        temporary = self._temporary.pop(item.nodeid, None)
        if failed and self.keep and (temporary or plan.after):
            back = ("QMP snapshot-load, then snapshot-delete" if target.scheme == "qemu" else
                    "Restore-VMSnapshot, then Remove-VMSnapshot, on the host")
            what = f"checkpoint {temporary!r} kept (back: {back})" if temporary else "not restored"
            self.kept.append(f"{target.url}: {item.nodeid}: {what}")
            log.warning("%s: --keep-vm: %s failed, VM left as it is (%s)", target.url,
                        item.nodeid, what)
            return
        try:
            if temporary is not None:
                try:
                    self.restore(target, temporary)
                finally:
                    self.hypervisor(target).remove_checkpoint(self._vm(target), temporary)
            if plan.restore is not None and plan.after and _leaves(plan, item, nextitem, target):
                self.restore(target, plan.restore)
        except PSDirectError as exc:
            exc.target = target.url
            fail_with(exc)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Destroy the VMs this run provisioned (keep a failed one's with --keep-vm)."""
        for url, (target, vm, disk) in list(self._provisioned.items()):
            if self.keep and url in self._failed:
                self.kept.append(f"{url}: a test failed: provisioned VM kept ({_describe(vm)}, "
                                 f"disk {disk}); remove it and delete the disk")
                continue
            self._reset_session(target)
            try:
                self.hypervisor(target).destroy(vm, disk)
            except PSDirectError as exc:
                log.warning("%s: destroying the provisioned VM failed: %s", url, exc)
                self.kept.append(f"{url}: destroying it failed ({exc.message}): "
                                 f"{_describe(vm)}, disk {disk}")
            else:
                self.destroyed.append(f"{url}: provisioned VM removed with its disk")
            del self._provisioned[url]

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.destroyed:
            terminalreporter.section("psdirect: VMs provisioned for this run")
            for line in self.destroyed:
                terminalreporter.line(line)
        if self.kept:
            terminalreporter.section("psdirect: VMs kept (--keep-vm)")
            for line in self.kept:
                terminalreporter.line(line)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        for hv in self._hosts.values():
            try:
                hv.close()
            except Exception as exc:
                log.warning("closing a Hyper-V host session failed: %s", exc)


def _describe(vm: Any) -> str:
    """How to find a provisioned VM again: its Hyper-V id, or its QEMU folder."""
    return f"id {vm.id}" if isinstance(vm, VMRef) else f"folder {vm.folder}"


def _leaves(plan: Plan, item: pytest.Item, nextitem: pytest.Item | None, target: Target) -> bool:
    """True after the last test of the plan's scope for this target."""
    if plan.scope is None or nextitem is None or _target(nextitem) != target:
        return True
    return plan.scope not in nextitem.listchain()
