"""Compliance in pytest: mode, batching per module, markers, waivers, JUnit properties, reports.

* ``--compliance-mode audit|audit-and-set`` (ini ``psdirect_compliance_mode``) sets what
  ``target.check(resource)`` does.
* Resources passed as parameters of a module's tests (``@pytest.mark.parametrize("resource",
  CHECKS)``) are fetched for each target in one round trip when the first of them runs.
* ``@pytest.mark.compliance(id=..., impact=0.7, severity="high", tags=["ssh"])`` annotates a check.
* ``--waivers FILE``: waived checks are skipped (``run: false``) or run as expected failures
  (``run: true``), and reported as Waived; expired waivers are ignored with a warning.
* JUnit XML gets ``compliance_status`` and ``compliance_reasons`` per test (the target is there
  already as ``psdirect_target``); ``--compliance-report out.json``, ``--compliance-html
  out.html`` and ``--reasons-baseline prev.json`` are written by the controller from every
  worker's reports (the results travel on each report as ``psdirect_compliance``).
"""

from __future__ import annotations

import json
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from ..compliance.html import render_html
from ..compliance.model import Mode, Resource, jsonable
from ..compliance.report import Row, build_report, compare, load_report
from ..compliance.waivers import Waiver, load_waivers, split_expired
from ..errors import PSDirectError
from ..targets import Target
from .report import check_name
from .state import POOL

_WAIVER = pytest.StashKey[Waiver]()
_MARKS = pytest.StashKey[dict[str, Any]]()
_RESULTS = pytest.StashKey[list[dict[str, Any]]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("psdirect")
    group.addoption("--compliance-mode", choices=[m.value for m in Mode], default=None,
                    help="audit (default) reports; audit-and-set also remediates what is "
                         "non-compliant (test -> set -> test -> get)")
    group.addoption("--compliance-report", metavar="PATH",
                    help="write the compliance report (JSON, Machine Configuration shape)")
    group.addoption("--compliance-html", metavar="PATH",
                    help="write a self-contained HTML check x host matrix")
    group.addoption("--reasons-baseline", metavar="PATH",
                    help="an earlier --compliance-report: report reasons that appeared or "
                         "disappeared since")
    group.addoption("--waivers", metavar="FILE", help="waivers (YAML, TOML or JSON): id, "
                    "justification, expiration, run")
    parser.addini("psdirect_compliance_mode", "default --compliance-mode", default="audit")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "compliance(id=None, impact=None, severity=None, tags=()): "
                                       "a compliance check's id, impact (0-1), severity and tags")
    try:
        mode = Mode.parse(config.getoption("compliance_mode") or
                          str(config.getini("psdirect_compliance_mode")))
        waivers = load_waivers(w) if (w := config.getoption("waivers")) else []
        baseline = load_report(b) if (b := config.getoption("reasons_baseline")) else None
    except PSDirectError as exc:
        raise pytest.UsageError(str(exc)) from None
    active, expired = split_expired(waivers)
    for waiver in expired if not hasattr(config, "workerinput") else ():
        config.issue_config_time_warning(pytest.PytestWarning(
            f"waiver {waiver.id!r} expired on {waiver.expiration}: ignored, the check counts "
            f"again ({waiver.justification})"), stacklevel=2)
    config.pluginmanager.register(CompliancePlugin(config, mode, active, expired, baseline),
                                  "psdirect-compliance")


def _target_of(item: pytest.Item) -> Target | None:
    callspec = getattr(item, "callspec", None)
    param = callspec.params.get("_psdirect_target") if callspec else None
    return param if isinstance(param, Target) else None


def _resources_of(item: pytest.Item) -> list[Resource]:
    callspec = getattr(item, "callspec", None)
    return [v for v in callspec.params.values() if isinstance(v, Resource)] if callspec else []


class CompliancePlugin:
    """Per-process state: batches to prefetch (workers), rows to report (controller)."""

    def __init__(self, config: pytest.Config, mode: Mode, waivers: dict[str, Waiver],
                 expired: list[Waiver], baseline: dict[str, Any] | None) -> None:
        self.config = config
        self.mode = mode
        self.waivers = waivers
        self.baseline = baseline
        self.batches: dict[tuple[str, str], list[Resource]] = {}
        self.rows: dict[str, Row] = {}
        self.written: list[str] = []
        self.diff: dict[str, Any] | None = None
        self.expired = expired

    # -- collection: waivers, marks, batches --------------------------------------------------
    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            target = _target_of(item)
            mark = item.get_closest_marker("compliance")
            marks: dict[str, Any] = jsonable(dict(mark.kwargs)) if mark else {}
            if isinstance(marks.get("tags"), str):
                marks["tags"] = [marks["tags"]]
            item.stash[_MARKS] = marks  # JSON types only: it travels from xdist workers
            resources = _resources_of(item)
            ids = {item.name, getattr(item, "originalname", item.name),
                   *(r.id for r in resources)}
            if target is not None:
                ids.add(check_name(item.name, target.url))
                self.batches.setdefault((item.nodeid.split("::")[0], target.url),
                                        []).extend(resources)
            if marks.get("id"):
                ids.add(str(marks["id"]))
            waiver = next((self.waivers[i] for i in sorted(ids) if i in self.waivers), None)
            if waiver is None:
                continue
            item.stash[_WAIVER] = waiver
            why = f"waived ({waiver.id}, until {waiver.expiration}): {waiver.justification}"
            item.add_marker(pytest.mark.xfail(reason=why, strict=False) if waiver.run
                            else pytest.mark.skip(reason=why))

    # -- running: mode, prefetch, results -----------------------------------------------------
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        target = _target_of(item)
        session = None
        if target is not None and POOL in item.config.stash:
            try:
                session = item.config.stash[POOL].peek(target)
            except PSDirectError:
                session = None
        if session is not None:
            checker = session.checker
            checker.mode = self.mode
            checker.take_results()
            batch = self.batches.pop((item.nodeid.split("::")[0], target.url if target else ""),
                                     None)
            if batch:
                try:
                    checker.prefetch(batch)
                except Exception as exc:  # each check then runs (and fails) on its own
                    item.warn(pytest.PytestWarning(
                        f"batched compliance get failed, checking one by one: "
                        f"{type(exc).__name__}: {exc}"))
        yield
        if session is None:
            return
        results = session.checker.take_results()
        item.stash[_RESULTS] = [r.to_dict() for r in results]
        if results:
            status = "Compliant" if all(r.compliant for r in results) else "NonCompliant"
            codes = " ".join(reason.code for r in results for reason in r.reasons)
            item.user_properties.append(("compliance_status", status))
            item.user_properties.append(("compliance_reasons", codes))

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item,
                                  call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
        outcome = yield
        if _target_of(item) is None:
            return
        report: pytest.TestReport = outcome.get_result()
        waiver = item.stash.get(_WAIVER, None)
        if waiver is not None and call.when == "setup" and not any(
                k == "compliance_waiver" for k, _ in report.user_properties):
            item.user_properties.append(("compliance_waiver", waiver.id))
            report.user_properties = list(item.user_properties)
        report.psdirect_compliance = {  # type: ignore[attr-defined]
            "results": item.stash.get(_RESULTS, []) if call.when == "call" else [],
            "marks": item.stash.get(_MARKS, {}),
            "waiver": waiver.to_dict() if waiver else None}

    # -- reporting (the controller, or the only process) --------------------------------------
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = dict(report.user_properties)
        url = props.get("psdirect_target")
        data = getattr(report, "psdirect_compliance", None)
        if url is None or not isinstance(data, dict):
            return
        row = self.rows.get(report.nodeid)
        if row is None:
            row = self.rows[report.nodeid] = Row(
                str(url), _readable(str(props.get("psdirect_check") or report.nodeid)),
                report.nodeid,
                waiver=data.get("waiver"), marks=data.get("marks") or {})
        row.duration += report.duration
        if report.when == "call":
            row.resources = data.get("results") or []
        status = _status(report, row)
        if status is not None:
            row.status = status
            if report.failed and not row.resources:
                row.message = _first_line(report)
                row.resources = [{"resourceId": row.check, "complianceStatus": "NonCompliant",
                                  "reasons": [{"code": "pytest:pytest:failed",
                                               "phrase": row.message}]}]

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        json_path = self.config.getoption("compliance_report")
        html_path = self.config.getoption("compliance_html")
        wanted = json_path or html_path or self.baseline is not None
        if hasattr(self.config, "workerinput") or not wanted:
            return
        report = build_report(self.rows.values(), self.mode.value,
                              [w.to_dict() for w in self.waivers.values()])
        report["expiredWaivers"] = [w.to_dict() for w in self.expired]
        if self.baseline is not None:
            self.diff = report["reasonsBaseline"] = compare(self.baseline, report)
        if json_path:
            Path(json_path).write_text(json.dumps(report, indent=2) + "\n")
            self.written.append(str(json_path))
        if html_path:
            Path(html_path).write_text(render_html(report))
            self.written.append(str(html_path))

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        tw = terminalreporter
        if self.diff is not None:
            tw.write_sep("=", "psdirect: reasons since the baseline")
            for word in ("appeared", "disappeared"):
                tw.write_line(f"  {len(self.diff[word])} reason(s) {word}")
                for d in self.diff[word]:
                    tw.write_line(f"    {'+' if word == 'appeared' else '-'} {d['target']}  "
                                  f"{d['resourceId']}  {d['code']}")
        for path in self.written:
            tw.write_line(f"psdirect: compliance report written to {path}")


def _status(report: pytest.TestReport, row: Row) -> str | None:
    """The row's status from this phase's report, or None when the phase says nothing new."""
    if row.waiver is not None and report.skipped:  # not run, or xfailed
        return "Waived"
    if report.when == "call":
        return "Compliant" if report.passed else "NonCompliant" if report.failed else "Skipped"
    if report.failed:
        return "Error"
    if report.skipped:
        return "Skipped"
    return None


def _readable(test_id: str) -> str:
    r"""A test id as written: pytest escapes ``\`` and non-ASCII in ids; the reports undo it.

    >>> _readable(r"test_registry[HKLM:\\SYSTEM]"), _readable(r"t[caf\xe9]")
    ('test_registry[HKLM:\\SYSTEM]', 't[café]')
    """
    try:
        return test_id.encode("ascii").decode("unicode_escape")
    except (UnicodeError, ValueError):
        return test_id


def _first_line(report: pytest.TestReport) -> str:
    text = report.longreprtext.strip().splitlines()
    errors = [line[2:].strip() for line in text if line.startswith("E ")]
    return (errors[0] if errors else text[-1] if text else "failed")[:300]
