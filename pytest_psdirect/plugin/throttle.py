"""``--throttle-limit`` and ``--max-sessions-per-endpoint``: caps on open sessions in a run.

Every process of the run that opens sessions (each xdist worker, or the one pytest process)
takes a slot of :class:`~pytest_psdirect.throttle.Throttle` before opening a session and frees it
when the session closes; the slot files live in ``$TMPDIR/psdirect-run-<xdist testrunuid>``, so
all workers on one machine share them without a server, and a worker killed with ``kill -9``
frees its slots with its descriptors. The xdist controller removes the folder after the run; it
holds ``psdirect-run-<uid>.owner`` locked while the run lives, so when it was killed itself, the
next run on the machine finds that lock free and removes the folder it left (:func:`reap_stale`).

Across machines (``--tx ssh=...``): locks are per machine, so the controller splits
``--throttle-limit`` between machines in proportion to their workers (the shares add up to at
most the limit: the run-wide cap holds); ``--max-sessions-per-endpoint`` holds per machine (one
endpoint reached from two machines may get that many sessions from each).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ..throttle import DEFAULT_LIMIT, Throttle

THROTTLE = pytest.StashKey[Throttle]()
_RUN_UIDS = pytest.StashKey[set[str]]()
_OWNED = pytest.StashKey[list[int]]()  # descriptors of the owner locks this process holds
_SHARE_KEY = "psdirect_throttle_share"


def _count(text: str, name: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise pytest.UsageError(f"{name} {text!r}: not a whole number") from None
    if value < least:
        raise pytest.UsageError(f"{name} {text!r}: must be at least {least}")
    return value


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("psdirect")
    group.addoption("--throttle-limit", metavar="N", default=None,
                    help=f"most sessions open at once in the whole run, all xdist workers "
                         f"together (default {DEFAULT_LIMIT}, as Invoke-Command; 0 = default; "
                         "ini psdirect_throttle_limit)")
    group.addoption("--max-sessions-per-endpoint", metavar="N", default=None,
                    help="most sessions open at once to one endpoint: an SSH host:port and "
                         "user, a WinRM account@host, the Hyper-V host of vm:// targets "
                         "(default no cap; ini psdirect_max_sessions_per_endpoint)")
    parser.addini("psdirect_throttle_limit", "default of --throttle-limit", default="0")
    parser.addini("psdirect_max_sessions_per_endpoint", "default of --max-sessions-per-endpoint",
                  default="")


def limits(config: pytest.Config) -> tuple[int, int | None]:
    """(run-wide limit, per-endpoint limit or None), checked: a bad value is a usage error."""
    raw = config.getoption("throttle_limit")
    name = "--throttle-limit" if raw is not None else "psdirect_throttle_limit (ini)"
    limit = _count(str(raw if raw is not None else config.getini("psdirect_throttle_limit")),
                   name, 0) or DEFAULT_LIMIT
    raw = config.getoption("max_sessions_per_endpoint")
    name = "--max-sessions-per-endpoint" if raw is not None else \
        "psdirect_max_sessions_per_endpoint (ini)"
    text = str(raw if raw is not None else config.getini("psdirect_max_sessions_per_endpoint"))
    return limit, (_count(text, name, 1) if text.strip() else None)


def run_folder(uid: str) -> Path:
    return Path(tempfile.gettempdir()) / f"psdirect-run-{uid}"


def _owner_file(folder: Path) -> Path:
    return folder.with_name(f"{folder.name}.owner")


def _own(config: pytest.Config, uid: str) -> None:
    """Hold the run's owner lock for as long as this process lives (not inherited by children)."""
    fd = os.open(_owner_file(run_folder(uid)), os.O_RDWR | os.O_CREAT, 0o600)
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    config.stash[_OWNED].append(fd)


def reap_stale(tmp: Path) -> list[Path]:
    """Remove the lock folders that runs killed with ``kill -9`` left in ``tmp``: those whose
    owner lock nobody holds. A folder without an owner file (remote workers' machines) is kept.

    >>> folder = Path(tempfile.mkdtemp())
    >>> (folder / "psdirect-run-x").mkdir(); (folder / "psdirect-run-x.owner").touch()
    >>> [p.name for p in reap_stale(folder)], sorted(p.name for p in folder.iterdir())
    (['psdirect-run-x'], [])
    """
    removed = []
    for owner in tmp.glob("psdirect-run-*.owner"):
        try:
            if owner.stat().st_uid != os.getuid():
                continue
            fd = os.open(owner, os.O_RDWR)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # its run is alive
        folder = owner.with_name(owner.name.removesuffix(".owner"))
        shutil.rmtree(folder, ignore_errors=True)
        owner.unlink(missing_ok=True)
        os.close(fd)
        removed.append(folder)
    return removed


def pytest_configure(config: pytest.Config) -> None:
    limit, per_endpoint = limits(config)  # checked in every process, the controller included
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is not None:
        uid = str(workerinput["testrunuid"])
        limit = int(workerinput.get(_SHARE_KEY, limit))
    else:
        uid = uuid.uuid4().hex  # a plain run: this process alone
    config.stash[_RUN_UIDS] = {uid}
    config.stash[_OWNED] = []
    if workerinput is None:  # the process that makes the run
        reap_stale(Path(tempfile.gettempdir()))
        _own(config, uid)
    config.stash[THROTTLE] = Throttle(run_folder(uid), limit, per_endpoint)


def machine_shares(machines: list[str], limit: int) -> dict[str, int]:
    """Each machine's part of ``limit``, in proportion to its workers; the parts add up to at
    most ``limit`` (each at least 1).

    >>> machine_shares(["local", "local", "ssh=a", "ssh=b"], 32)
    {'local': 16, 'ssh=a': 8, 'ssh=b': 8}
    """
    workers = Counter(machines)
    return {m: max(1, limit * n // len(machines)) for m, n in workers.items()}


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """On the controller: tell each worker its machine's share of the throttle."""
    uid = str(node.workerinput["testrunuid"])
    if uid not in node.config.stash[_RUN_UIDS]:
        node.config.stash[_RUN_UIDS].add(uid)
        _own(node.config, uid)
    specs = getattr(getattr(node, "nodemanager", None), "specs", None) or []
    if not any(spec.ssh or spec.socket for spec in specs):
        return  # one machine: every worker uses the same lock files, the whole limit
    machines = [str(spec.ssh or spec.socket or "local") for spec in specs]
    spec = node.gateway.spec
    here = str(spec.ssh or spec.socket or "local")
    node.workerinput[_SHARE_KEY] = machine_shares(machines, node.config.stash[THROTTLE].limit)[here]


def pytest_unconfigure(config: pytest.Config) -> None:
    """The process that made the run removes its lock folders (the controller under xdist:
    its workers on this machine have ended by now)."""
    if getattr(config, "workerinput", None) is not None or _RUN_UIDS not in config.stash:
        return
    for uid in config.stash[_RUN_UIDS]:
        shutil.rmtree(run_folder(uid), ignore_errors=True)
        _owner_file(run_folder(uid)).unlink(missing_ok=True)
    for fd in config.stash.get(_OWNED, []):
        os.close(fd)
