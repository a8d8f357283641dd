"""Checking resources on a session: Audit and AuditAndSet, batched where resources allow.

:class:`Checker` belongs to one :class:`~pytest_psdirect.sessions.TargetSession`
(``target.checker``). ``target.check(resource)`` audits one resource; :meth:`Checker.prefetch`
evaluates many :class:`~.shell.ShellResource` in one round trip, and a later ``check`` of one of
them uses that answer. Every result is also appended to :attr:`Checker.results`, which the
plugin reads to report per test.

AuditAndSet follows Machine Configuration: test -> set only when non-compliant -> test again ->
get. Here Test is "Get returned no reasons", so it is get -> set -> get, and the result carries
the reasons that were remediated in ``before``. A resource that cannot be set (no fix, e.g. an
sshd setting or an optional feature) is audited only: its result says ``remediated=False``.

Example::

    checker = Checker(session, Mode.AUDIT)
    checker.prefetch([Sysctl("kernel.randomize_va_space", 2), File("/etc/shadow", max_mode=0o640)])
    result = checker.check(Sysctl("kernel.randomize_va_space", 2))   # no round trip
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from .model import ComplianceResult, Mode, Observed, Reason, Resource
from .psresource import PSResource, get_many_ps
from .shell import ShellResource, get_many, set_many

if TYPE_CHECKING:
    from ..sessions import TargetSession

log = logging.getLogger(__name__)


class Checker:
    """Runs checks on one session and remembers their results."""

    def __init__(self, session: TargetSession, mode: Mode = Mode.AUDIT) -> None:
        self.session = session
        self.mode = mode
        self.results: list[ComplianceResult] = []
        self._prefetched: dict[Resource, tuple[Observed, float]] = {}
        self.round_trips = 0

    def prefetch(self, resources: Iterable[Resource]) -> None:
        """Get every batchable resource not yet fetched: shell ones in one round trip,
        PowerShell ones in one pipeline."""
        fresh = [r for r in dict.fromkeys(resources) if r not in self._prefetched]
        shell = [r for r in fresh if isinstance(r, ShellResource)]
        ps = [r for r in fresh if isinstance(r, PSResource)]
        if shell:
            self._store(shell, lambda: get_many(self.session, shell))
        if ps:
            self._store(ps, lambda: get_many_ps(self.session, ps))

    def _store(self, todo: Sequence[Resource], fetch: Callable[[], list[Observed]]) -> None:
        start = time.monotonic()
        observed = fetch()
        self.round_trips += 1
        share = (time.monotonic() - start) / len(todo)
        log.debug("prefetched %d checks on %s", len(todo), self.session.url)
        for resource, obs in zip(todo, observed, strict=True):
            self._prefetched[resource] = (obs, share)

    def _get(self, resource: Resource) -> tuple[Observed, float]:
        if resource in self._prefetched:
            return self._prefetched.pop(resource)
        start = time.monotonic()
        observed = resource.get(self.session)
        self.round_trips += 1
        return observed, time.monotonic() - start

    def check(self, resource: Resource, mode: Mode | str | None = None) -> ComplianceResult:
        """Audit ``resource`` (and remediate it in AuditAndSet mode); the result is recorded."""
        mode = Mode.parse(mode) if mode is not None else self.mode
        observed, duration = self._get(resource)
        before: tuple[Reason, ...] = ()
        remediated = False
        if mode is Mode.AUDIT_AND_SET and observed.reasons and not resource.can_set:
            log.info("%s: %s cannot be set: audited only", self.session.url, resource.id)
        elif mode is Mode.AUDIT_AND_SET and observed.reasons:
            start = time.monotonic()
            before = tuple(observed.reasons)
            log.info("%s: remediating %s (%d reasons)", self.session.url, resource.id,
                     len(before))
            resource.set(self.session)
            observed = resource.get(self.session)
            self.round_trips += 2
            remediated = not observed.reasons
            duration += time.monotonic() - start
        result = ComplianceResult(resource, not observed.reasons, tuple(observed.reasons),
                                  dict(observed.properties), mode, remediated,
                                  self.session.url, duration, before)
        self.results.append(result)
        return result

    def check_all(self, resources: Sequence[Resource],
                  mode: Mode | str | None = None) -> list[ComplianceResult]:
        """Check many resources: batchable ones in one round trip (plus one set and one get
        round trip for all that need remediation in AuditAndSet)."""
        mode = Mode.parse(mode) if mode is not None else self.mode
        self.prefetch(resources)
        if mode is Mode.AUDIT_AND_SET:
            return self._check_all_and_set(resources)
        return [self.check(r, mode) for r in resources]

    def _check_all_and_set(self, resources: Sequence[Resource]) -> list[ComplianceResult]:
        batchable = [r for r in resources if isinstance(r, ShellResource) and r.can_set
                     and r in self._prefetched and self._prefetched[r][0].reasons]
        before: dict[Resource, tuple[Reason, ...]] = {
            r: tuple(self._prefetched[r][0].reasons) for r in batchable}
        if batchable:
            set_many(self.session, batchable)
            for shell, obs in zip(batchable, get_many(self.session, batchable), strict=True):
                self._prefetched[shell] = (obs, self._prefetched[shell][1])
            self.round_trips += 2
        results = []
        for resource in resources:
            if resource in before:
                obs, duration = self._prefetched.pop(resource)
                result = ComplianceResult(resource, not obs.reasons, tuple(obs.reasons),
                                          dict(obs.properties), Mode.AUDIT_AND_SET,
                                          not obs.reasons, self.session.url, duration,
                                          before[resource])
                self.results.append(result)
            else:
                result = self.check(resource, Mode.AUDIT_AND_SET)
            results.append(result)
        return results

    def take_results(self) -> list[ComplianceResult]:
        """The results recorded since the last call (the plugin calls it after each test)."""
        taken, self.results = self.results, []
        return taken

