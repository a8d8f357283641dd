"""Options of QEMU VM targets: ``--hypervisor qemu`` turns ``--vm-name`` into ``qemu://NAME``
targets, in ``--qemu-dir`` (VM folders the plugin starts) or ``--qemu-connect`` (libvirt).

>>> Target("qemu", "web01", options=(("dir", "/srv/vms"),)).url
'qemu://web01?dir=/srv/vms'
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import pytest

from ..targets import Target


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("psdirect")
    group.addoption("--hypervisor", choices=("hyperv", "qemu"), default=None,
                    help="what runs --vm-name VMs: hyperv (PowerShell Direct; the default) or "
                         "qemu (the QEMU guest agent: qemu://NAME)")
    group.addoption("--qemu-dir", metavar="DIR",
                    help="--hypervisor qemu: the folder of the plugin's QEMU VMs, one DIR/NAME "
                         "each (default ~/.cache/pytest-psdirect/qemu/vms)")
    group.addoption("--qemu-connect", metavar="URI",
                    help="--hypervisor qemu: --vm-name names libvirt domains of this URI "
                         "(qemu:///system or qemu:///session)")


def qemu_urls(config: pytest.Config, names: list[str], ids: list[str]) -> list[str]:
    """``--vm-name`` with ``--hypervisor qemu``: qemu://NAME URLs with ``--qemu-dir`` or
    ``--qemu-connect``; Hyper-V options are a usage error."""
    for option, flag in (("hyperv_host", "--hyperv-host"), ("hyperv_host_credential",
                                                             "--hyperv-host-credential")):
        if config.getoption(option):
            raise pytest.UsageError(f"{flag} is for Hyper-V; --hypervisor qemu reaches VMs "
                                    "through the QEMU guest agent (--qemu-dir, --qemu-connect)")
    if ids:
        raise pytest.UsageError("--vm-id is for Hyper-V: QEMU VMs are named (--vm-name)")
    folder, connect = config.getoption("qemu_dir"), config.getoption("qemu_connect")
    if folder and connect:
        raise pytest.UsageError("--qemu-dir and --qemu-connect: give one (a folder of QEMU VMs "
                                "the plugin starts, or a libvirt URI)")
    options = (("connect", connect),) if connect else \
        (("dir", str(Path(folder).expanduser().resolve())),) if folder else ()
    return [Target("qemu", urllib.parse.quote(n, safe="-._~"), options=options).url
            for n in names]
