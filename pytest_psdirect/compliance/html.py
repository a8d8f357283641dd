"""The compliance report as one self-contained HTML page: a check x host matrix.

No scripts, fonts or images from anywhere: inline CSS, and ``<details>`` to expand a cell's
reasons (its ``title`` shows them on hover). Every value is escaped.

Example::

    Path("out.html").write_text(render_html(build_report(rows, "audit")))
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

_CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#1f2328}
h1{font-size:20px;margin:0 0 4px} .meta{color:#59636e;margin-bottom:16px}
table{border-collapse:collapse} th,td{border:1px solid #d1d9e0;padding:4px 8px;vertical-align:top}
th{background:#f6f8fa;text-align:left} th.host{writing-mode:horizontal-tb;max-width:220px;
word-break:break-all;font-weight:600}
td.cell{min-width:150px} td.check{font-family:ui-monospace,monospace;font-size:12px;max-width:380px;
word-break:break-all}
.Compliant{background:#dafbe1} .NonCompliant{background:#ffebe9} .Error{background:#fff1c2}
.Waived{background:#ddf4ff} .Skipped{background:#eef1f4;color:#59636e}
.badge{font-weight:600} details summary{cursor:pointer;list-style:none}
details summary::-webkit-details-marker{display:none} td.check .more{white-space:nowrap}
details summary .more{color:#59636e;font-weight:400;font-size:12px}
ul.reasons{margin:4px 0 0;padding-left:16px;font-size:12px} code{font-size:11px}
.totals td{font-weight:600;background:#f6f8fa}
.legend span{display:inline-block;padding:2px 8px;margin-right:6px;border:1px solid #d1d9e0}
.baseline{margin-top:16px;font-size:13px}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _reasons(check: Mapping[str, Any]) -> list[tuple[str, str]]:
    out = []
    for resource in check.get("resources", []):
        for reason in resource.get("reasons", []):
            out.append((reason["code"], reason["phrase"]))
    return out


def _cell(check: Mapping[str, Any] | None) -> str:
    if check is None:
        return '<td class="cell">-</td>'
    status = check["complianceStatus"]
    reasons = _reasons(check)
    lines = [f"{code}  {phrase}" for code, phrase in reasons]
    if check.get("waiver"):
        lines.append(f"waived: {check['waiver']['justification']}")
    if check.get("message") and not reasons:
        lines.append(check["message"])
    title = "\n".join(lines)
    if not lines:
        return f'<td class="cell {status}" title="{_e(status)}"><span class="badge">{status}</span></td>'
    items = "".join(f"<li><code>{_e(code)}</code> {_e(phrase)}</li>" for code, phrase in reasons)
    extra = [ln for ln in lines[len(reasons):]]
    items += "".join(f"<li>{_e(line)}</li>" for line in extra)
    return (f'<td class="cell {status}" title="{_e(title)}"><details><summary>'
            f'<span class="badge">{status}</span> <span class="more">({len(lines)} ▸)</span>'
            f'</summary><ul class="reasons">{items}</ul></details></td>')


def render_html(report: Mapping[str, Any]) -> str:
    """The page for a report made by :func:`~.report.build_report`."""
    targets = [t["target"] for t in report["targets"]]
    cells: dict[tuple[str, str], Mapping[str, Any]] = {}
    checks: list[str] = []
    for target in report["targets"]:
        for check in target["checks"]:
            if check["check"] not in checks:
                checks.append(check["check"])
            cells[(check["check"], target["target"])] = check
    head = "".join(f'<th class="host">{_e(t)}</th>' for t in targets)
    rows = []
    for name in sorted(checks):
        impact = next((c.get("impact") for (n, _), c in cells.items()
                       if n == name and c.get("impact") is not None), None)
        label = _e(name) + (f' <span class="more">impact {impact}</span>' if impact else "")
        rows.append(f'<tr><td class="check">{label}</td>'
                    + "".join(_cell(cells.get((name, t))) for t in targets) + "</tr>")
    totals = "".join(
        f"<td>{t['counts'].get('Compliant', 0)} ok / "
        f"{t['counts'].get('NonCompliant', 0) + t['counts'].get('Error', 0)} failing"
        f" / {t['counts'].get('Waived', 0)} waived</td>" for t in report["targets"])
    status_row = "".join(f'<td class="{t["complianceStatus"]}"><span class="badge">'
                         f'{t["complianceStatus"]}</span></td>' for t in report["targets"])
    legend = "".join(f'<span class="{s}">{s}</span>'
                     for s in ("Compliant", "NonCompliant", "Error", "Waived", "Skipped"))
    return (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<title>Compliance report</title><style>" + _CSS + "</style></head><body>"
        f"<h1>Compliance report</h1><div class=\"meta\">generated {_e(report['generated'])}"
        f" · mode {_e(report['mode'])} · {len(targets)} target(s) · {len(checks)} check(s)</div>"
        f'<p class="legend">{legend}</p>'
        f'<table><thead><tr><th>check</th>{head}</tr></thead><tbody>'
        f'<tr class="status"><td><b>target status</b></td>{status_row}</tr>'
        + "".join(rows) + f'<tr class="totals"><td>totals</td>{totals}</tr></tbody></table>'
        + _baseline(report) + "</body></html>\n")


def _baseline(report: Mapping[str, Any]) -> str:
    diff = report.get("reasonsBaseline")
    if not diff:
        return ""
    parts = []
    for word in ("appeared", "disappeared"):
        items = "".join(f"<li>{_e(d['target'])} <code>{_e(d['resourceId'])}</code> "
                        f"<code>{_e(d['code'])}</code></li>" for d in diff[word])
        parts.append(f"<h3>Reasons {word} since {_e(diff.get('previous'))}: "
                     f"{len(diff[word])}</h3><ul>{items}</ul>")
    return '<div class="baseline">' + "".join(parts) + "</div>"
