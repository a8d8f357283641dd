"""Benchmark: native PowerShell Direct (handshake + OutOfProc over a socket) vs pwsh:// stdio.

    python bench/hvsocket.py [--rounds 300] [--opens 20]

The guest is tests/hvbroker.py's FakeGuest on loopback TCP (the broker exchange of
RemoteSessionHyperVSocket.cs, then tests/psrp_server.py on the socket); the other side is the
same PSRP server started as ``pwsh -s`` on pipes. Both are our OutOfProcEngine, so the difference
is the handshake (two connections, ~8 small round trips) and socket vs pipe. Hyper-V sockets
are not loopback TCP: on a real host add the VMBus latency to each handshake round trip.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from hvbroker import FakeGuest
from psrp_fixtures import SERVER

from pytest_psdirect import Credential, Secret, Settings
from pytest_psdirect.powershell.command import build_invocation
from pytest_psdirect.powershell.outofproc import OutOfProcEngine
from pytest_psdirect.transports.hvsocket_io import NativePSDirect
from pytest_psdirect.transports.pwsh_local import _ProcessPipes

VM = uuid.UUID(int=1)
PASSWORD = "Bench-Pa55w.rd"


def _ms(samples: list[float]) -> str:
    samples = sorted(samples)
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return f"median {statistics.median(samples) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms"


def _stdio_engine() -> OutOfProcEngine:
    def spawn(timeout: float) -> _ProcessPipes:
        return _ProcessPipes(subprocess.Popen([sys.executable, str(SERVER), "-s"],
                                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                              stderr=subprocess.PIPE, bufsize=0))
    return OutOfProcEngine(spawn, label="pwsh://")


def _timed(make: Callable[[], object]) -> float:
    t = time.perf_counter()
    make()
    return time.perf_counter() - t


def measure(rounds: int = 300, opens: int = 20) -> dict[str, list[float]]:
    guest = FakeGuest(users={"localhost\\admin": PASSWORD})
    native = NativePSDirect(VM, Credential("admin", Secret(PASSWORD)),
                            Settings(connect_timeout=10), socket_factory=guest.socket_factory)
    out: dict[str, list[float]] = {k: [] for k in (
        "handshake", "native open", "stdio open", "native run_ps", "stdio run_ps")}
    try:
        guest.psrp = False
        for _ in range(opens):
            out["handshake"].append(_timed(lambda: native.connect(10).close()))
        guest.psrp = True
        for _ in range(opens):
            engines: list[OutOfProcEngine] = []
            out["native open"].append(_timed(lambda: engines.append(native.open())))  # noqa: B023
            stdio = _stdio_engine()
            out["stdio open"].append(_timed(lambda: stdio.open(10)))  # noqa: B023
            for e in (*engines, stdio):
                e.close()
        nat, stdio = native.open(), _stdio_engine()
        stdio.open(10)
        inv = build_invocation("psrp-test:echo", (), {"Name": "x"})
        for _ in range(rounds):
            out["native run_ps"].append(_timed(lambda: nat.invoke(inv, timeout=10)))
            out["stdio run_ps"].append(_timed(lambda: stdio.invoke(inv, timeout=10)))
        nat.close()
        stdio.close()
    finally:
        guest.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--opens", type=int, default=20)
    args = parser.parse_args()
    data = measure(args.rounds, args.opens)
    print(f"handshake only (broker + server, no PSRP) x{args.opens}: {_ms(data['handshake'])}")
    for what in ("open", "run_ps"):
        n, s = data[f"native {what}"], data[f"stdio {what}"]
        print(f"{what}: native socket {_ms(n)}; pwsh:// stdio {_ms(s)}; "
              f"ratio {statistics.median(n) / statistics.median(s):.2f}x")


if __name__ == "__main__":
    main()
