"""Mask revealed secrets (``********``) in everything pytest writes, as CI systems do.

Each :class:`~pytest_psdirect.credentials.Secret` registers its value when created
(``credentials/secret.py``); this plugin applies :func:`~pytest_psdirect.credentials.secret.mask`
where pytest's output leaves the process:

* test reports (``longrepr``, captured output and log sections, user properties) as they are
  made, so JUnit XML, ``-rA`` summaries and reports sent by xdist workers are masked at source;
* the terminal writer's file: tracebacks with ``--full-trace``/``--showlocals``, KeyboardInterrupt
  and INTERNALERROR traces (paramiko's frame locals hold the password while it connects);
* pytest's log handlers: ``--log-file``, live logs, caplog and the captured-log sections.

At configure time the ``--credential-env``/inventory ``env:`` password variables are registered
so that they never reach a child process (``scrubbed_environ``) and their values are masked even
before a credential is built from them.

Example: with ``--credential-env WEB --showlocals``, a failing test's locals show
``password = '********'``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Generator
from typing import IO, Any

import pytest

from ..credentials.secret import mask, register_secret, register_secret_env, withhold_env

_HANDLERS = ("log_file_handler", "log_cli_handler", "caplog_handler", "report_handler")


class MaskingFile:
    """A text file whose ``write`` masks secrets; everything else goes to the wrapped file."""

    def __init__(self, wrapped: IO[str]) -> None:
        self._wrapped = wrapped

    def write(self, text: str) -> int:
        self._wrapped.write(mask(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wrapped, name)


class MaskingFilter(logging.Filter):
    """Masks the formatted message and traceback of each record passing a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        return True


def _env_prefixes(config: pytest.Config) -> set[str]:
    from .state import SELECTION

    prefixes = {config.getoption("credential_env") or ""}
    selection = config.stash.get(SELECTION, None)
    for target in selection.targets if selection else ():
        kind, _, rest = (target.credential_ref or "").partition(":")
        if kind == "env":
            prefixes.add(rest)
    return prefixes - {""}


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    for prefix in _env_prefixes(config):
        register_secret_env(f"{prefix}_PASSWORD")
        register_secret(os.environ.get(f"{prefix}_PASSWORD", ""))
    if not _spawns_workers(config):  # an xdist controller keeps them until its workers exist
        _withhold(config)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    writer = getattr(reporter, "_tw", None)
    if writer is not None and not isinstance(writer._file, MaskingFile):
        writer._file = MaskingFile(writer._file)
    logging_plugin = config.pluginmanager.get_plugin("logging-plugin")
    for name in _HANDLERS:
        handler = getattr(logging_plugin, name, None)
        if isinstance(handler, logging.Handler):
            handler.addFilter(MaskingFilter())


def _spawns_workers(config: pytest.Config) -> bool:
    """True in an xdist controller: its workers read the credential variables themselves."""
    return not hasattr(config, "workerinput") and bool(
        getattr(config.option, "numprocesses", None) or getattr(config.option, "tx", None))


def _withhold(config: pytest.Config) -> None:
    """Take the password variables out of ``os.environ`` (values kept for ``from_env``)."""
    for prefix in _env_prefixes(config):
        withhold_env(f"{prefix}_PASSWORD")


@pytest.hookimpl(wrapper=True)
def pytest_sessionstart(session: pytest.Session) -> Generator[None, None, None]:
    """In an xdist controller, once its workers started (xdist's own sessionstart, inside this
    wrapper) with the variables: withhold them."""
    try:
        return (yield)
    finally:
        if _spawns_workers(session.config):
            _withhold(session.config)


def redact_report(report: pytest.TestReport | pytest.CollectReport) -> None:
    """Mask ``report`` in place; a longrepr holding a secret becomes its masked text."""
    if report.longrepr is not None:
        text = str(report.longrepr)
        masked = mask(text)
        if masked != text:
            report.longrepr = masked
    report.sections = [(title, mask(content)) for title, content in report.sections]
    if isinstance(report, pytest.TestReport):
        report.user_properties = [(k, mask(v) if isinstance(v, str) else v)
                                  for k, v in report.user_properties]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport,
                                                                        pytest.TestReport]:
    report = yield
    redact_report(report)
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    redact_report(report)


@pytest.hookimpl(tryfirst=True)
def pytest_collectreport(report: pytest.CollectReport) -> None:
    redact_report(report)
