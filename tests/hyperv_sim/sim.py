"""Configure and start the simulated Hyper-V host: a ``pwsh`` look-alike wrapper running the test
PSRP server with the Hyper-V handlers, and readers of its event log."""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent.parent
SERVER = TESTS / "psrp_server.py"
HANDLERS = Path(__file__).resolve().with_name("handlers.py")

#: the password of the simulated guests' account (test data, never a real secret)
GUEST_USER, GUEST_PASSWORD = "Administrator", "Guest-Pa55word!"
HOSTILE_NAME = "web 01's $env:X `n; Remove-Item C:\\ -Recurse \"x\""


@dataclass
class HyperVSim:
    """One simulated host: its directory, VM table and the ``pwsh://?exe=`` wrapper."""

    dir: Path
    vms: list[dict[str, Any]] = field(default_factory=list)
    host_too_old: bool = False
    session_cost: float = 0.0  # seconds New-PSSession takes (a model; 0 = the simulator's own)
    containers: list[dict[str, Any]] = field(default_factory=list)
    templates: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add_vm(self, name: str, *, state: str = "Running", vm_id: str | None = None,
               **options: Any) -> str:
        """A VM; ``options``: ``boot_seconds`` (heartbeat "No Contact" that long after Start-VM),
        ``checkpoint_type`` ("Production", the default, or "Standard"), ``heartbeat`` (its
        status once booted, default "OK")."""
        vm_id = vm_id or str(uuid.uuid4())
        self.vms.append({"name": name, "id": vm_id, "state": state, "username": GUEST_USER,
                         "password": GUEST_PASSWORD, **options})
        self.save()
        return vm_id

    def add_container(self, container_id: str, *, state: str = "Running") -> str:
        self.containers.append({"id": container_id, "state": state})
        self.save()
        return container_id
    def add_template(self, path: str, **options: Any) -> None:
        """A template VHDX on the host (vm-provision's parent disk); VMs made from it have the
        guest account and ``options`` (``boot_seconds``)."""
        self.templates[path] = {"username": GUEST_USER, "password": GUEST_PASSWORD, **options}
        self.save()

    def answer(self, vm_name: str, fragment: str, *values: Any) -> None:
        """The guest emulation's answer to any script containing ``fragment``: ``values`` as
        output objects (dicts become PSCustomObjects). First added, first matched."""
        vm = next(v for v in self.vms if v["name"] == vm_name)
        vm.setdefault("answers", []).append([fragment, list(values)])
        self.save()

    def vm_state(self, vm_id: str) -> dict[str, Any]:
        """The VM's current row in the simulated host (state, generation, checkpoints)."""
        path = self.dir / "vmstate.json"
        table = json.loads(path.read_text()) if path.exists() else {}
        vm = next(v for v in self.vms if v["id"] == vm_id)
        row: dict[str, Any] = table.get(vm_id, {"state": vm["state"], "generation": 0,
                                                "checkpoints": []})
        return row

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "sim.json").write_text(json.dumps(
            {"dir": str(self.dir), "vms": self.vms, "host_too_old": self.host_too_old,
             "session_cost": self.session_cost, "containers": self.containers,
             "templates": self.templates}))

    @property
    def exe(self) -> Path:
        exe = self.dir / "fake-hyperv-host"
        if not exe.exists():
            self.save()
            exe.write_text(
                "#!/bin/sh\n"
                f"export PSRP_SERVER_HANDLERS='{HANDLERS}'\n"
                f"export PSDIRECT_HYPERV_SIM='{self.dir / 'sim.json'}'\n"
                f'exec "{sys.executable}" "{SERVER}" "$@"\n')
            exe.chmod(0o755)
        return exe

    @property
    def host_url(self) -> str:
        return f"pwsh://?exe={self.exe}"

    def events(self) -> list[dict[str, Any]]:
        path = self.dir / "events.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def counts(self) -> Counter[str]:
        return Counter(e["event"] for e in self.events())

    def guest_file(self, vm_id: str, path: str) -> Path:
        parts = [p for p in path.replace("\\", "/").replace(":", "").split("/") if p]
        return self.dir / "guests" / vm_id / os.path.join(*parts)

    def host_temp_files(self) -> list[str]:
        temp = self.dir / "host-temp"
        return sorted(p.name for p in temp.iterdir()) if temp.exists() else []
