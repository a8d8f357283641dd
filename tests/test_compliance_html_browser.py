"""The ``--compliance-html`` page as a user sees it: written by a real run against two podman
containers (``tests/ctr_support.py``), then rendered by headless Chromium. The screenshot must
show something (not one flat colour) and the DOM Chromium built must hold the matrix cells and
the reasons. Skipped without ``/usr/bin/chromium``, unless CI=true (then it fails)."""

from __future__ import annotations

import os
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from ctr_support import Lab, require

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

SUITE = """
import pytest
from pytest_psdirect.compliance import File, Sysctl, User, assert_compliant

CHECKS = [User("root", uid=0), File("/etc/passwd", owner="root", max_mode=0o644),
          Sysctl("kernel.no_such_knob", 1), File("/etc/psd-not-here")]

@pytest.mark.compliance(impact=0.7, severity="high", tags=["base"])
@pytest.mark.parametrize("resource", CHECKS, ids=str)
def test_baseline(target, resource):
    assert_compliant(target.check(resource))
"""


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    profile.mkdir()
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=90, check=False,
                          stdin=subprocess.DEVNULL)


def _predict(kind: int, a: int, b: int, c: int) -> int:
    """PNG filter ``kind``'s prediction from left ``a``, up ``b``, upper-left ``c``."""
    if kind < 3:
        return (0, a, b)[kind]
    if kind == 3:
        return (a + b) // 2
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, one bytes per pixel) of an 8-bit RGB/RGBA non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        header = chunk if kind == b"IHDR" else header
        idat += chunk if kind == b"IDAT" else b""
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    bpp = 3 if colour == 2 else 4
    raw, stride, rows, prev = zlib.decompress(idat), width * bpp, [], bytearray(width * bpp)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            line[i] = (line[i] + _predict(kind, a, prev[i], prev[i - bpp] if i >= bpp else 0)) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, [r[i:i + bpp] for r in rows for i in range(0, stride, bpp)]


def test_compliance_html_renders_in_chromium(pytester: pytest.Pytester, ctr_lab: Lab,
                                             tmp_path: Path) -> None:
    require(None if os.path.exists(CHROMIUM) else
            f"{CHROMIUM} is not installed (apt-get install chromium)")
    pytester.makepyfile(test_suite=SUITE)
    hosts = [ctr_lab.url(ctr_lab.debian), ctr_lab.url(ctr_lab.busybox)]
    page = pytester.path / "out.html"
    result = pytester.runpytest_subprocess("--hosts", ",".join(hosts), "-p", "no:cacheprovider",
                                           f"--compliance-html={page}")
    result.assert_outcomes(passed=4, failed=4)
    shot = tmp_path / "report.png"
    run = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1400,900", page.as_uri())
    assert shot.exists(), f"chromium wrote no screenshot: {run.stderr[-2000:]}"
    width, height, pixels = png_pixels(shot.read_bytes())
    assert (width, height) == (1400, 900)
    colours = set(pixels)
    assert len(colours) > 20, f"the screenshot is (nearly) blank: {len(colours)} colour(s)"
    red = bytes.fromhex("ffebe9")  # .NonCompliant cells
    assert any(px[:3] == red for px in pixels), "no NonCompliant cell is painted"
    dom = _chromium(tmp_path, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert html.count('class="cell Compliant"') == 4 and html.count('class="cell NonCompliant"') == 4
    for host in hosts:
        assert f'<th class="host">{host.replace("&", "&amp;")}</th>' in html
    for code, phrase in [("sysctl:sysctl:notpresent", "kernel.no_such_knob"),
                         ("file:file:notpresent", "/etc/psd-not-here")]:
        assert html.count(f"<code>{code}</code>") == 2, code
        assert phrase in html
    assert "test_baseline[user[root]]" in html and "impact 0.7" in html
