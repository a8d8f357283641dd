"""Terminal summary: a check x target table of PASS/FAIL/ERROR/SKIP (up to 12 targets; the
totals per target, slowest checks and dead targets are :mod:`.fleet_report`'s).

Works under xdist: each item carries ``("psdirect_target", url)`` in ``user_properties``, which
travels with its reports (and lands in JUnit XML as a property).
"""

from __future__ import annotations

import pytest

_PROPERTY = "psdirect_target"
_CHECK = "psdirect_check"
_ORDER = ("FAIL", "ERROR", "PASS", "SKIP")
_MATRIX_TARGETS = 12  # wider than this, the check x target table is not printed


def _property(report: pytest.TestReport, name: str) -> str | None:
    for key, value in report.user_properties:
        if key == name:
            return str(value)
    return None


def check_name(item_name: str, url: str) -> str:
    """The test's name without the target's part of its id.

    >>> check_name("test_x[ssh://a@b-permitrootlogin-no]", "ssh://a@b")
    'test_x[permitrootlogin-no]'
    >>> check_name("test_y[local://]", "local://")
    'test_y'
    """
    base, bracket, params = item_name.partition("[")
    if not bracket:
        return base
    ids = params[:-1]
    for pattern in (f"{url}-", f"-{url}", url):
        if pattern in ids:
            ids = ids.replace(pattern, "", 1)
            break
    return f"{base}[{ids}]" if ids else base


class TargetReport:
    """Collects outcomes per (check, target) and prints them after the run."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.cells: dict[tuple[str, str], str] = {}

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            callspec = getattr(item, "callspec", None)
            param = callspec.params.get("_psdirect_target") if callspec else None
            url = getattr(param, "url", None)
            if url:
                item.user_properties.append((_PROPERTY, url))
                item.user_properties.append((_CHECK, check_name(item.name, url)))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        url, check = _property(report, _PROPERTY), _property(report, _CHECK)
        if url is None or check is None:
            return
        if report.when == "call" or report.outcome != "passed":
            outcome = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP"}[report.outcome]
            if report.when != "call" and report.outcome == "failed":
                outcome = "ERROR"
            key = (check, url)
            previous = self.cells.get(key)
            if previous is None or _ORDER.index(outcome) < _ORDER.index(previous):
                self.cells[key] = outcome

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.cells or self.config.getoption("verbose") < -1:
            return
        tw = terminalreporter
        targets = sorted({url for _, url in self.cells})
        checks = sorted({check for check, _ in self.cells})
        if len(targets) > _MATRIX_TARGETS:
            return  # too wide to read: fleet_report's per-target lines say it
        tw.write_sep("=", "psdirect: checks per target")
        for index, url in enumerate(targets, 1):
            tw.write_line(f"  [{index}] {url}")
        width = max(len(c) for c in checks)
        tw.write_line(f"  {'check'.ljust(width)}  " + "  ".join(f"[{i}]".ljust(5)
                                                               for i in range(1, len(targets) + 1)))
        for check in checks:
            cells = []
            for url in targets:
                outcome = self.cells.get((check, url), "-")
                cells.append(outcome.ljust(5))
            tw.write_line(f"  {check.ljust(width)}  " + "  ".join(cells))
