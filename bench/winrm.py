"""WinRM engine overhead: our run_ps round trip and session open vs pypsrp's bare pipeline.

Both sides run over the same replayed exchanges of a real Windows server (pypsrp's sdist
recordings, downloaded like the tests do; ``PSDIRECT_PYPSRP_SDIST=tarball`` to reuse one), so
the figures are the client-side cost: building the pipeline, (de)serializing, our conversion
to PSResult. Network and server time come on top, the same for both.

    python bench/winrm.py [ROUNDS]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.wsman import WSMan
from winrm_replay import Replay, fetch_pypsrp_sdist, load_messages, zero_uuid

from pytest_psdirect.powershell import build_invocation
from pytest_psdirect.powershell.wsman import WSManEngine
from pytest_psdirect.powershell.wsman_options import WSManOptions


def wsman_over(messages: list[dict[str, Any]]) -> WSMan:
    wsman = WSMan("fakehost")
    wsman.transport = Replay(messages)
    return wsman


def timed(fn: Any, rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    uuid.uuid4 = zero_uuid  # type: ignore[assignment]  # the recordings' UUIDs are blanked
    root = fetch_pypsrp_sdist(Path(tempfile.mkdtemp(prefix="pypsrp-bench-")))
    opening = load_messages(root, "test_psrp_open_runspace")  # Create, Receive x2, Delete
    invocations = load_messages(root, "test_psrp_multiple_invocations")
    cycle = invocations[3:6]  # Command, Receive (output 2), Signal (release)

    def open_ours() -> None:
        engine = WSManEngine(WSManOptions("fakehost"), None, label="winrm://fakehost",
                             wsman_factory=lambda t: wsman_over(opening))
        engine.open(10)
        engine.close()

    def open_bare() -> None:
        pool = RunspacePool(wsman_over(opening))
        pool.open()
        pool.close()

    rows = {"session open (Create+Receive x2, close)": (timed(open_ours, rounds),
                                                         timed(open_bare, rounds))}
    many = [*invocations[:3], *cycle * rounds, invocations[-1]]
    engine = WSManEngine(WSManOptions("fakehost"), None, label="winrm://fakehost",
                         wsman_factory=lambda t: wsman_over(many))
    engine.open(10)
    inv = build_invocation("1+1", (), {})
    ours = timed(lambda: engine.invoke(inv, timeout=30), rounds)
    engine.close()
    pool = RunspacePool(wsman_over(many))
    pool.open()

    def bare() -> None:
        ps = PowerShell(pool)
        ps.add_script("1+1")
        ps.invoke()
        ps.close()

    rows["run_ps('1+1') on an open pool"] = (ours, timed(bare, rounds))
    pool.close()
    print(f"{'':44} {'ours ms':>9} {'pypsrp ms':>10} {'ratio':>6}   (median of {rounds}, replayed)")
    for name, (a, b) in rows.items():
        ma, mb = statistics.median(a) * 1000, statistics.median(b) * 1000
        print(f"{name:44} {ma:9.3f} {mb:10.3f} {ma / mb:6.2f}")


if __name__ == "__main__":
    main()
