"""Benchmark: PowerShell Direct through a Hyper-V host, nested session vs the naive route.

    python bench/psdirect.py [--commands 200] [--session-cost 0]

Both routes drive the simulated Hyper-V host (tests/hyperv_sim, the test PSRP server with the
Hyper-V handlers) as a local ``pwsh://`` host session, which stays open in both cases:

* nested (pytest-psdirect): ``New-PSSession -VMName`` once, kept on the host; each command is one
  ``Invoke-Command -Session $s`` (``vm://web01?host=...`` through TargetSession.run_ps);
* naive: each command is ``Invoke-Command -VMName web01 -Credential $c -ScriptBlock {...}``, i.e.
  a PowerShell Direct session opened and removed per command (and no state kept).

Prints per-command time (median, p99), and the counts the simulator logged: New-PSSession,
Invoke-Command, Remove-PSSession, and our round trips to the host. ``--session-cost S`` makes
each simulated New-PSSession take S seconds (a model of a real guest's session set-up, which
the simulator does not have; 0 measures only the protocol work on this machine).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from hyperv_sim.sim import GUEST_PASSWORD, GUEST_USER, HyperVSim

from pytest_psdirect import Settings
from pytest_psdirect.credentials.secret import Credential, Secret
from pytest_psdirect.pool import SessionPool
from pytest_psdirect.powershell.command import build_invocation
from pytest_psdirect.targets import parse_target
from pytest_psdirect.transports import TransportRegistry

#: the naive route's host script: a PowerShell Direct session per command
NAIVE = r"""# psdirect-bench:naive-invoke
param([string]$VMName, [pscredential]$Credential, [string]$Code, [object[]]$ArgumentList,
      [hashtable]$Parameters)
Invoke-Command -VMName $VMName -Credential $Credential `
    -ArgumentList $Code, $ArgumentList, $Parameters -ScriptBlock {
    param([string]$PsdCode, [object[]]$PsdArgs, [hashtable]$PsdParams)
    if ($null -eq $PsdArgs) { $PsdArgs = @() }
    if ($null -eq $PsdParams) { $PsdParams = @{} }
    . ([scriptblock]::Create($PsdCode)) @PsdArgs @PsdParams
}
"""


def _stats(samples: list[float]) -> str:
    samples = sorted(samples)
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return f"median {statistics.median(samples) * 1000:7.2f} ms  p99 {p99 * 1000:7.2f} ms"


def measure(commands: int, session_cost: float) -> dict[str, dict[str, float]]:
    credential = Credential(GUEST_USER, Secret(GUEST_PASSWORD))
    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        sim = HyperVSim(Path(tmp) / "hv", session_cost=session_cost)
        sim.add_vm("web01")
        pool = SessionPool(TransportRegistry(), Settings(connect_timeout=30, command_timeout=60),
                           lambda t, r: credential)
        try:
            start = time.perf_counter()
            vm = pool.get(parse_target(f"vm://web01?host={quote(sim.host_url, safe='')}"))
            opened = time.perf_counter() - start
            host = pool.get(parse_target(sim.host_url))  # the naive route's host session
            before = sim.counts()
            nested = []
            for _ in range(commands):
                t0 = time.perf_counter()
                vm.run_ps("# guest:whoami")
                nested.append(time.perf_counter() - t0)
            mid = sim.counts()
            naive = []
            inv = build_invocation(NAIVE, (), {"VMName": "web01", "Credential": credential,
                                               "Code": "# guest:whoami", "ArgumentList": [],
                                               "Parameters": {}})
            for _ in range(commands):
                t0 = time.perf_counter()
                r = host._live_transport().run_ps(inv, timeout=60)
                assert r.output and not r.errors, r
                naive.append(time.perf_counter() - t0)
            after = sim.counts()
        finally:
            pool.close_all()
        closed = sim.counts()
    for name, samples, c0, c1 in (("nested", nested, before, mid), ("naive", naive, mid, after)):
        out[name] = {"median_ms": statistics.median(samples) * 1000,
                     "new_pssession": c1["new-pssession"] - c0["new-pssession"],
                     "invoke_command": c1["invoke-command"] - c0["invoke-command"],
                     "remove_pssession": c1["remove-pssession"] - c0["remove-pssession"],
                     "host_round_trips": commands}
        print(f"{name:7s} {commands} commands: {_stats(samples)}; New-PSSession "
              f"{out[name]['new_pssession']:.0f}, Invoke-Command {out[name]['invoke_command']:.0f}, "
              f"Remove-PSSession {out[name]['remove_pssession']:.0f}, round trips to the host "
              f"{commands}")
    print(f"nested session open (host process + New-PSSession): {opened * 1000:.1f} ms; "
          f"sessions opened in all: {closed['new-pssession']}, removed: {closed['remove-pssession']}")
    ratio = out["naive"]["median_ms"] / out["nested"]["median_ms"]
    print(f"per command, naive / nested: {ratio:.2f}x time; PowerShell Direct sessions opened: "
          f"naive {out['naive']['new_pssession']:.0f} for {commands} commands, nested 1 for the "
          "whole run")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=200)
    parser.add_argument("--session-cost", type=float, default=0.0)
    args = parser.parse_args()
    measure(args.commands, args.session_cost)


if __name__ == "__main__":
    main()
