"""The host-side PowerShell scripts, read from the package's ``templates/*.ps1`` files.

Each starts with a ``# psdirect:NAME`` marker line (what the test simulator keys on) and a
``param()`` block: every value travels as a PSRP parameter, never inside the script text.

>>> load("vm-open").splitlines()[0]
'# psdirect:vm-open'
>>> 'vm-invoke' in NAMES
True
"""

from __future__ import annotations

import functools
from importlib import resources

NAMES = ("vm-open", "vm-invoke", "vm-copy-to", "vm-copy-from", "vm-close", "host-remove",
         "doctor-host", "doctor-vm",
         # VM lifecycle (lifecycle.py)
         "vm-state", "vm-start", "vm-stop", "vm-probe", "vm-checkpoint", "vm-restore",
         "vm-remove-checkpoint", "vm-provision", "vm-destroy")


@functools.cache
def load(name: str) -> str:
    """The text of template ``name`` (one of :data:`NAMES`)."""
    if name not in NAMES:
        raise KeyError(f"no host template {name!r}")
    return (resources.files(__package__) / "templates" / f"{name}.ps1").read_text(encoding="utf-8")
