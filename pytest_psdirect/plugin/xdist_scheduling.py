"""The xdist scheduler of :mod:`.xdist_sched`: ``--dist loadscope`` whose scope is the target.

Imported only when xdist builds a scheduler (``-n`` without ``--dist``), so a plain run never
pays for xdist's scheduler modules.
"""

from __future__ import annotations

from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling

from .state import SELECTION
from .xdist_sched import target_of

_AHEAD = 2  # targets queued per worker: the one running and the next (its session opens ahead)


class TargetScheduling(LoadScopeScheduling):  # type: ignore[misc]  # subclassing untyped xdist
    """``--dist loadscope`` whose scope is the test's target."""

    def __init__(self, config: pytest.Config, log: Any = None) -> None:
        super().__init__(config, log)
        selection = config.stash.get(SELECTION, None)
        self.known = tuple(t.url for t in selection.targets) if selection else ()

    def _reschedule(self, node: Any) -> None:
        """Keep two targets queued on each worker: the one it runs and the next, whose session
        then opens while the first one's tests run (xdist's heuristic waits until two tests are
        left). A worker that runs out takes the next target from the shared queue."""
        if node.shutting_down:
            return
        if not self.workqueue:
            node.shutdown()
            return
        units = self.assigned_work.get(node, {}).values()
        if sum(1 for unit in units if not all(unit.values())) < _AHEAD:
            self._assign_work_unit(node)

    def _split_scope(self, nodeid: str) -> str:
        url = target_of(nodeid, self.known)
        return f"target {url}" if url else str(super()._split_scope(nodeid))

    def remove_node(self, node: Any) -> str | None:
        """A crashed worker's test is reported as crashed once, never run again.

        xdist's loadscope puts the whole scope back in the queue, the crashed test included, so a
        replacement worker ran it again: two results for one test, in the terminal and in JUnit.
        The target's other pending tests still move to another worker.
        """
        workload = self.assigned_work.get(node, {})
        crashed = next((nodeid for unit in workload.values()
                        for nodeid, done in unit.items() if not done), None)
        for unit in workload.values():
            if crashed in unit:
                unit[crashed] = True
        rest: str | None = super().remove_node(node)
        return crashed if crashed is not None else rest
