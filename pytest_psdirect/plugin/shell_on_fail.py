"""``--psdirect-shell-on-fail``: walk into the failing target, in the failing test's session.

When a test that used a target fails, pytest calls ``pytest_exception_interact`` after the
failure is recorded and before any teardown; this plugin then suspends pytest's output capture
and runs ``psdirect shell`` (:func:`~pytest_psdirect.repl.console.interact`) on the very
:class:`~pytest_psdirect.sessions.TargetSession` the test used: same connection, same agent (same
``$PSDIRECT_SESSION``), same runspace on PowerShell targets. ``exit`` or Ctrl-D resumes the run.

It never prompts where nobody can answer: with ``CI`` set, without a terminal on stdin and
stdout, or in an xdist worker it prints one line saying why instead.

Example::

    pytest suites/ --hosts ssh://admin@web01 --psdirect-shell-on-fail
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from ..sessions import TargetSession

OPTION = "--psdirect-shell-on-fail"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("psdirect").addoption(
        OPTION, action="store_true", dest="psdirect_shell_on_fail", default=False,
        help="when a test fails, open an interactive shell on its target in its session, "
             "before teardown (exit or Ctrl-D to go on); never in CI, without a terminal or "
             "under xdist")


def pytest_report_header(config: pytest.Config) -> str | None:
    """Under ``-n`` the workers have no terminal: say so once, up front."""
    if config.getoption("psdirect_shell_on_fail") and config.getoption("numprocesses", None):
        return ("psdirect: --psdirect-shell-on-fail is off under xdist (-n): workers have no "
                "terminal; rerun the failing test without -n")
    return None


def _sessions(item: pytest.Item) -> list[TargetSession]:
    funcargs: dict[str, Any] = getattr(item, "funcargs", {})
    found: list[TargetSession] = []
    for value in funcargs.values():
        if isinstance(value, TargetSession) and value not in found:
            found.append(value)
    return found


def why_not_interactive(config: pytest.Config) -> str | None:
    """Why no shell can be opened now (None: it can). Call with capture suspended."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        return "CI is set"
    if hasattr(config, "workerinput"):
        return "this is an xdist worker (run the failing test without -n)"
    if not (os.isatty(0) and os.isatty(1)):
        return "stdin/stdout is not a terminal"
    return None


def pytest_exception_interact(node: pytest.Item | pytest.Collector, call: pytest.CallInfo[Any],
                              report: pytest.TestReport | pytest.CollectReport) -> None:
    config = node.config
    if not config.getoption("psdirect_shell_on_fail") or not isinstance(node, pytest.Item):
        return
    if getattr(report, "when", None) != "call":
        return
    sessions = _sessions(node)
    if not sessions:
        return
    from ..repl.console import interact

    capman = config.pluginmanager.getplugin("capturemanager")
    if capman is not None:
        capman.suspend(in_=True)
    try:
        reporter = config.pluginmanager.getplugin("terminalreporter")
        write = reporter.write_line if reporter is not None else print
        why = why_not_interactive(config)
        if why is not None:
            write(f"psdirect: not opening a shell on {sessions[0].name} for {node.nodeid}: "
                  f"{why}")
            return
        for session in sessions:
            write("")
            write(f"psdirect: {node.nodeid} failed; shell on {session.name} in the test's "
                  "session (exit or Ctrl-D to continue)")
            interact(session)
    finally:
        if capman is not None:
            capman.resume()
