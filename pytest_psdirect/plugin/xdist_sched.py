"""Under ``pytest -n N``: all tests of one target on one worker, with the test ids of a plain run.

xdist's ``--dist loadgroup`` would group by ``xdist_group`` marks, but its workers append
``@group`` to every marked node id, which changes test ids and JUnit names between runs with and
without ``-n``. So when ``-n`` is given without ``--dist``, the plugin schedules with
:class:`~.xdist_scheduling.TargetScheduling` instead: the group of a test is the target URL in
its id, read back from the node id; tests with no target id are grouped by module, as ``--dist
loadscope`` does. An explicit ``--dist`` is left alone.

How this meets "one session per target, a free worker takes another target's group": a target's
tests form one scope, sent whole to one worker, so its session opens once in the run; each
worker holds at most two scopes (the one it runs and the next) and takes the next scope from the
shared queue when one is done, so no worker idles while targets are left.
"""

from __future__ import annotations

import re
from collections.abc import Generator
from typing import Any

import pytest

BY_TARGET = pytest.StashKey[bool]()
#: A target URL inside a parametrized id: after ``[`` or ``-``, up to the next ``-`` or ``]``.
_URL = re.compile(r"(?:\[|-)([a-z][a-z0-9+.]*://.*?)(?=-|\]$)")


def target_of(nodeid: str, known: tuple[str, ...] = ()) -> str | None:
    """The target URL in a node id: the longest of ``known`` found there, else the first URL.

    >>> target_of("t.py::test_a[ssh://u@web-1-permitrootlogin-no]", ("ssh://u@web-1",))
    'ssh://u@web-1'
    >>> target_of("t.py::test_a[local://]"), target_of("t.py::test_a[1]")
    ('local://', None)
    """
    _, bracket, params = nodeid.partition("[")
    if not bracket:
        return None
    params = "[" + params
    for url in sorted(known, key=len, reverse=True):
        if re.search(rf"(?:\[|-){re.escape(url)}(?=-|\]$)", params):
            return url
    match = _URL.search(params)
    return match.group(1) if match else None


@pytest.hookimpl(wrapper=True)
def pytest_cmdline_main(config: pytest.Config) -> Generator[None, object, object]:
    """``-n`` or ``--tx`` without ``--dist``: schedule by target (xdist would pick ``load`` for
    ``-n``, and not distribute at all for ``--tx`` alone)."""
    workers = getattr(config.option, "numprocesses", None) or getattr(config.option, "tx", None)
    in_worker = hasattr(config, "workerinput")  # a worker keeps its --tx args: never distribute
    if workers and not in_worker and getattr(config.option, "dist", "") == "no":
        config.option.dist = "load"
        config.stash[BY_TARGET] = True
    return (yield)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if not config.stash.get(BY_TARGET, False):
        return None
    from .xdist_scheduling import TargetScheduling  # xdist's scheduler: only under -n (~40 ms)

    return TargetScheduling(config, log)
