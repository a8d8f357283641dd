"""Fleet summary: counts and slowest checks per target, dead targets, progress, CI gate signals.

Built from test reports only (``psdirect_target`` / ``psdirect_unreachable`` in their
``user_properties``), so under xdist the controller aggregates what every worker ran.

For a CI gate, a run tells *unreachable* targets (their session could not be opened or was
lost: nothing was checked) from *non-compliant* ones (reachable, a check failed):

* terminal sections ``psdirect: targets`` and ``psdirect: unreachable targets``;
* with ``--junitxml``, testsuite properties ``psdirect_unreachable`` and
  ``psdirect_noncompliant`` (one per target, the value is its URL), and each test of an
  unreachable target carries the one-line reason as its property ``psdirect_unreachable``.

The exit status stays pytest's own (1 when any test failed or errored), so existing gates keep
working; the JUnit properties say why.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

import pytest
from _pytest.junitxml import xml_key

from .fleet import UNREACHABLE
from .xdist_sched import target_of

_PROPERTY = "psdirect_target"
_SLOWEST = 3


def _property(report: pytest.TestReport, name: str) -> str | None:
    return next((str(v) for k, v in report.user_properties if k == name), None)


@dataclass
class TargetTally:
    """What happened on one target."""

    outcomes: dict[str, str] = field(default_factory=dict)  # nodeid -> passed/failed/error/skipped
    seconds: dict[str, float] = field(default_factory=dict)  # nodeid -> setup+call+teardown
    calls: dict[str, float] = field(default_factory=dict)  # nodeid -> the check itself
    unreachable: str | None = None

    def counts(self) -> Counter[str]:
        return Counter(self.outcomes.values())


_RANK = {"error": 0, "failed": 1, "skipped": 2, "passed": 3}


class FleetReport:
    """Controller-side (or plain run) aggregation of every target's reports."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.tally: dict[str, TargetTally] = defaultdict(TargetTally)
        self.expected: Counter[str] = Counter()  # url -> tests collected (for progress)
        self.finished: Counter[str] = Counter()
        self.names: dict[str, str] = {}  # nodeid -> check name

    # -- progress ----------------------------------------------------------------------------
    def _expect(self, nodeids: list[str]) -> None:
        if self.expected:
            return  # every worker collects the same tests: count once
        for nodeid in nodeids:
            url = target_of(nodeid)
            if url:
                self.expected[url] += 1

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if getattr(self.config, "workerinput", None) is None:
            self._expect([item.nodeid for item in session.items])

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: object, ids: list[str]) -> None:
        self._expect(ids)

    def running(self) -> list[str]:
        return [u for u in self.tally if 0 < self.finished[u] < self.expected.get(u, 0)]

    def _progress(self, url: str) -> None:
        if self.config.getoption("verbose") < 1 or self.finished[url] != self.expected.get(url):
            return
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return
        done = sum(1 for u, n in self.expected.items() if self.finished[u] >= n)
        counts = self.tally[url].counts()
        running = self.running()
        shown = ", ".join(running[:5]) + (f" (+{len(running) - 5})" if len(running) > 5 else "")
        reporter.write_line(
            f"psdirect: {url} done ({_counts_text(counts)}); {done}/{len(self.expected)} "
            f"targets done" + (f"; running: {shown}" if running else ""))

    # -- reports -------------------------------------------------------------------------------
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        url = _property(report, _PROPERTY)
        if url is None:
            return
        tally = self.tally[url]
        reason = _property(report, UNREACHABLE)
        if reason is not None:
            tally.unreachable = reason
        if report.when == "call" or report.outcome != "passed":
            outcome = "error" if report.when != "call" and report.failed else report.outcome
            previous = tally.outcomes.get(report.nodeid)
            if previous is None or _RANK[outcome] < _RANK[previous]:
                tally.outcomes[report.nodeid] = outcome
        tally.seconds[report.nodeid] = tally.seconds.get(report.nodeid, 0.0) + report.duration
        if report.when == "call":
            tally.calls[report.nodeid] = report.duration
        if report.when == "teardown":
            self.names[report.nodeid] = _property(report, "psdirect_check") or report.nodeid
            self.finished[url] += 1
            self._progress(url)

    # -- summary -------------------------------------------------------------------------------
    def unreachable(self) -> dict[str, str]:
        return {u: t.unreachable for u, t in sorted(self.tally.items()) if t.unreachable}

    def noncompliant(self) -> list[str]:
        return [u for u, t in sorted(self.tally.items())
                if not t.unreachable and {"failed", "error"} & set(t.outcomes.values())]

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """JUnit testsuite properties for a CI gate (before junitxml writes its file)."""
        xml = self.config.stash.get(xml_key, None)
        if xml is None or getattr(self.config, "workerinput", None) is not None:
            return
        for url in self.unreachable():
            xml.add_global_property("psdirect_unreachable", url)
        for url in self.noncompliant():
            xml.add_global_property("psdirect_noncompliant", url)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.tally:
            return
        quiet = self.config.getoption("verbose") < 0
        tw = terminalreporter
        shown = {url: tally for url, tally in sorted(self.tally.items())
                 if not quiet or {"failed", "error"} & set(tally.outcomes.values())}
        if shown:
            tw.write_sep("=", f"psdirect: targets ({len(self.tally)})")
        width = min(60, max(len(u) for u in self.tally))
        for url, tally in shown.items():
            counts = tally.counts()
            slow = sorted(tally.calls.items(), key=lambda kv: -kv[1])[:1]
            slowest = "".join(f"; slowest {self.names.get(n, n)} {s:.2f}s" for n, s in slow)
            state = "UNREACHABLE " if tally.unreachable else ""
            tw.write_line(f"  {url.ljust(width)}  {state}{_counts_text(counts)} in "
                          f"{sum(tally.seconds.values()):.2f}s{slowest}")
        every = sorted(((s, n, u) for u, t in self.tally.items() for n, s in t.calls.items()),
                       reverse=True)[:_SLOWEST]
        if every and not quiet:
            tw.write_line("  slowest checks: " + "; ".join(
                f"{self.names.get(n, n)} on {u} {s:.2f}s" for s, n, u in every))
        dead = self.unreachable()
        if dead:
            tw.write_sep("=", f"psdirect: unreachable targets ({len(dead)})")
            for reason in dead.values():
                tw.write_line(f"  {reason}")  # names the target: the line its tests error with


def _counts_text(counts: Counter[str]) -> str:
    """``20 passed, 1 failed, 0 errors, 0 skipped``-style text (only non-zero, passed always).

    >>> _counts_text(Counter({"passed": 3, "error": 2}))
    '3 passed, 2 errors'
    """
    parts = [f"{counts['passed']} passed"]
    parts += [f"{counts[k]} {word}" for k, word in
              (("failed", "failed"), ("error", "errors"), ("skipped", "skipped")) if counts[k]]
    return ", ".join(parts)


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(FleetReport(config), "psdirect-fleet-report")
