"""Picking the lab's /24: free on this machine, and never the same one for two labs at once.

A lab holds :func:`lab_lock` from picking its subnet until its bridge carries the address, so a
second lab starting at the same moment sees the first one's bridge and steps over it.

Example (as root)::

    >>> with lab_lock():                                   # doctest: +SKIP
    ...     subnet = free_subnet()                         # e.g. "10.200.0"
    ...     # create the bridge and give it f"{subnet}.1/24" here
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import subprocess
import time
from collections.abc import Iterator

from . import LabError
from .procs import LOCK_FILE

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class SubnetError(LabError):
    """No usable subnet, or the one asked for is taken."""


@contextlib.contextmanager
def lab_lock(path: str = LOCK_FILE, timeout: float = 60.0) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` shared by every lab on this machine (bounded wait)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SubnetError(f"another lab held {path} for more than {timeout:g}s",
                                      hint=f"a lab is starting or stuck; check 'fuser {path}'") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def used_networks() -> list[Network]:
    """Every IPv4 network an address or a route of this namespace holds (default routes excluded)."""
    used: list[Network] = []
    for args in (("-4", "-o", "addr", "show"), ("-4", "route", "show", "table", "all")):
        out = subprocess.run(["ip", *args], capture_output=True, text=True, check=False,
                             timeout=30).stdout
        for line in out.splitlines():
            for word in line.split():
                if "/" in word or word[:1].isdigit():
                    with contextlib.suppress(ValueError):
                        net = ipaddress.ip_network(word, strict=False)
                        if net.prefixlen > 0:
                            used.append(net)
    return used


def subnet_in_use(subnet: str) -> bool:
    """True when ``subnet`` (three octets, e.g. ``"10.200.0"``) overlaps an address or route here."""
    net = ipaddress.ip_network(f"{subnet}.0/24")
    return any(net.overlaps(u) for u in used_networks())


def free_subnet(candidates: range = range(200, 250)) -> str:
    """The first ``10.N.0`` /24 (N in ``candidates``) that no address or route here overlaps.

    Checked against ``ip -4 addr`` and ``ip -4 route``, so a VPN, a docker bridge or another lab
    that holds part of 10.0.0.0/8 is stepped over. Call it under :func:`lab_lock`.
    """
    used = used_networks()
    for n in candidates:
        net = ipaddress.ip_network(f"10.{n}.0.0/24")
        if not any(net.overlaps(u) for u in used):
            return f"10.{n}.0"
    raise SubnetError(f"no free 10.N.0.0/24 subnet for the lab (N = {candidates.start}.."
                      f"{candidates.stop - 1})", hint="pass --subnet with a free /24")


def check_subnet(subnet: str) -> None:
    """Raise :class:`SubnetError` unless ``subnet`` is three octets of a free /24."""
    try:
        ipaddress.ip_network(f"{subnet}.0/24")
    except ValueError:
        raise SubnetError(f"--subnet {subnet!r} is not the first three octets of an IPv4 /24",
                          hint="e.g. --subnet 10.200.0") from None
    if subnet_in_use(subnet):
        raise SubnetError(f"subnet {subnet}.0/24 is already in use on this machine (another lab?)",
                          hint="take that lab down, or leave out --subnet to get a free one")
