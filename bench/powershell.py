"""Benchmark: one run_ps round trip and session open, ours vs bare psrpcore, same PSRP server.

    python bench/powershell.py [--rounds 300]

Both sides talk OutOfProc to the test PSRP server (tests/psrp_server.py, psrpcore's server side)
started as a ``pwsh -s`` process. "bare" is psrpcore's ClientRunspacePool/ClientPowerShell driven
by the smallest loop the protocol allows (Command/CommandAck, Data/DataAck, read to the final
pipeline state, Close); "ours" is ``pwsh://`` through TargetSession.run_ps (values as parameters,
conversion to PSResult, bounded waits). Rounds are interleaved.
"""

from __future__ import annotations

import argparse
import base64
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psrpcore
from psrpcore.types import PSInvocationState, RunspacePoolState

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from psrp_fixtures import SERVER, server_wrapper

from pytest_psdirect import Settings
from pytest_psdirect.pool import SessionPool
from pytest_psdirect.targets import parse_target
from pytest_psdirect.transports import TransportRegistry

EMPTY = uuid.UUID(int=0)
FINAL = (PSInvocationState.Completed, PSInvocationState.Failed, PSInvocationState.Stopped)


class Bare:
    """psrpcore with the least code around it (no timeouts, no conversion)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(SERVER), "-s"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE)  # buffered: fast readline
        self.pool = psrpcore.ClientRunspacePool()
        self.pool.open()
        self.send()
        while self.pool.state != RunspacePoolState.Opened:
            self.read()

    def line(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()

    def send(self) -> None:
        while (p := self.pool.data_to_send(32768)) is not None:
            self.line(f"<Data Stream='Default' PSGuid='{p.pipeline_id or EMPTY}'>"
                      f"{base64.b64encode(p.data).decode()}</Data>")
            while self.read() != "DataAck":
                pass

    def read(self) -> str:
        assert self.proc.stdout is not None
        raw = self.proc.stdout.readline()
        tag = raw[1:raw.index(b" ")].decode()
        if tag == "Data":
            start = raw.index(b">") + 1
            guid = uuid.UUID(raw[raw.index(b"PSGuid='") + 8:][:36].decode())
            data = base64.b64decode(raw[start:raw.index(b"</Data>")])
            self.pool.receive_data(psrpcore.PSRPPayload(data, psrpcore.StreamType.default,
                                                        None if guid == EMPTY else guid))
            self.events: list[Any] = []
            while (e := self.pool.next_event()) is not None:
                self.events.append(e)
        return tag

    def run(self, script: str, **params: Any) -> list[Any]:
        ps = psrpcore.ClientPowerShell(self.pool)
        ps.add_script(script)
        for k, v in params.items():
            ps.add_parameter(k, v)
        self.line(f"<Command PSGuid='{ps.pipeline_id}' />")
        while self.read() != "CommandAck":
            pass
        ps.start()
        self.send()
        out: list[Any] = []
        while ps.state not in FINAL:
            if self.read() == "Data":
                out += [e.data for e in self.events if isinstance(e, psrpcore.PipelineOutputEvent)]
        ps.close()
        self.line(f"<Close PSGuid='{ps.pipeline_id}' />")
        return out

    def close(self) -> None:
        self.line(f"<Close PSGuid='{EMPTY}' />")
        self.proc.wait(5)


def _stats(samples: list[float]) -> str:
    samples = sorted(samples)
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return f"median {statistics.median(samples) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=300)
    rounds = parser.parse_args().rounds
    exe = server_wrapper(Path(tempfile.mkdtemp()))
    url = f"pwsh://?exe={exe}"
    opens: dict[str, list[float]] = {"bare": [], "ours": []}
    for _ in range(10):
        t = time.perf_counter()
        Bare().close()
        opens["bare"].append(time.perf_counter() - t)
        pool = SessionPool(TransportRegistry(), Settings(), lambda t, r: None)
        t = time.perf_counter()
        pool.get(parse_target(url))
        opens["ours"].append(time.perf_counter() - t)
        pool.close_all()
    bare = Bare()
    pool = SessionPool(TransportRegistry(), Settings(), lambda t, r: None)
    session = pool.get(parse_target(url))
    calls: dict[str, list[float]] = {"bare": [], "ours": []}
    for _ in range(rounds):
        t = time.perf_counter()
        assert bare.run("psrp-test:echo", Name="x")
        calls["bare"].append(time.perf_counter() - t)
        t = time.perf_counter()
        assert session.run_ps("psrp-test:echo", Name="x").output
        calls["ours"].append(time.perf_counter() - t)
    bare.close()
    pool.close_all()
    for what, data in (("session open", opens), (f"run_ps round trip x{rounds}", calls)):
        ratio = statistics.median(data["ours"]) / statistics.median(data["bare"])
        print(f"{what}: ours {_stats(data['ours'])}; bare psrpcore {_stats(data['bare'])}; "
              f"ratio {ratio:.2f}x")


if __name__ == "__main__":
    main()
