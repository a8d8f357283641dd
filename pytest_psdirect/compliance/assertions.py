"""Assertion helpers: a failing check says where, which reasons and how properties differ.

Example::

    result = target.check(SshdSetting("permitrootlogin", "no"))
    assert_compliant(result)
    # AssertionError: ssh://admin@web01: sshd[permitrootlogin] is NonCompliant
    #   sshd:sshd:permitrootlogin  sshd permitrootlogin is yes, expected no.
    #   properties (actual, expected):
    #     permitrootlogin: 'yes', expected 'no'
"""

from __future__ import annotations

from typing import Any

from .model import ComplianceResult


def _diff(result: ComplianceResult) -> list[str]:
    lines = []
    for key, want in result.resource.expected().items():
        have: Any = result.properties.get(key, "(not reported)")
        if have != want:
            lines.append(f"    {key}: {have!r}, expected {want!r}")
    return lines


def describe(result: ComplianceResult) -> str:
    """``target: id is Status``, the ``Code  Phrase`` lines and the property diff."""
    lines = [f"{result.target}: {result.resource.id} is {result.status}"]
    lines += [f"  {reason}" for reason in result.reasons]
    diff = _diff(result) if not result.compliant else []
    if diff:
        lines += ["  properties (actual, expected):", *diff]
    return "\n".join(lines)


def assert_compliant(result: ComplianceResult) -> None:
    """Fail unless ``result`` is compliant, listing its reasons and the property diff."""
    __tracebackhide__ = True
    if not result.compliant:
        raise AssertionError(describe(result))


def assert_reason(result: ComplianceResult, code: str, phrase: str | None = None) -> None:
    """Fail unless ``result`` has a reason with ``code`` (and ``phrase`` in its Phrase)."""
    __tracebackhide__ = True
    for reason in result.reasons:
        if reason.code == code and (phrase is None or phrase in reason.phrase):
            return
    want = code + (f" with {phrase!r}" if phrase else "")
    raise AssertionError(f"expected reason {want}; got:\n" + describe(result))
