"""Fleet benchmark: whole ``pytest`` processes on real sshd hosts (run as root: starts a lab).

    python bench/fleet.py [--hosts 200] [--rounds 5] [--workers 4] [--skip-testinfra-fleet]

Prints, from one run (ratios measured side by side, interleaved rounds, medians):
  (a) 3 hosts x 20 testinfra checks, one pytest process as a user runs it: ours vs
      pytest-testinfra's own plugin with its paramiko backend (``-p no:psdirect``)
  (b) 50 hosts x 20 checks with ``-n W``: ours vs pytest-testinfra ``--hosts`` + ``-n W``
  (c) N hosts x 10 checks, ``-n W --throttle-limit 32``: wall time vs the ideal
      ``W1 + H x (ceil(N / W) - 1)``, W1 the wall time of one wave (W hosts, one per worker,
      with the workers' start-up) and H the time one more wave adds (2W hosts minus W hosts),
      both measured in separate runs; peak memory (high-water RSS) of controller and workers;
      and the same N hosts in one process without xdist (the throttle bounds the sessions it
      opens ahead: 32 at most)
  (d) wall time for 10, 50, 100 and N hosts and the cost per added host (linear or not)
  and the lab's sshd memory per host.
Both sides run with ``-p no:hypothesispytest -p no:cacheprovider`` (a user's install has no
hypothesis plugin; the dev venv does, and it costs ~0.9 s of start-up to both alike).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from run import COMMANDS, PACKAGES, PATHS, SUITE  # the 20 checks of bench/run.py

from pytest_psdirect.lab.sshlab import SSHLab

TEN = """
import pytest
@pytest.mark.parametrize("path", ("/etc/passwd", "/etc/group", "/etc/hosts", "/bin/sh", "/tmp"))
def test_file(host, path):
    assert host.file(path).exists
@pytest.mark.parametrize("cmd", ("true", "uname -s", "id -u", "test -d /etc", "echo ok"))
def test_command(host, cmd):
    assert host.run(cmd).rc == 0
"""
COMMON = ["-q", "-p", "no:cacheprovider", "-p", "no:hypothesispytest"]


class PeakRSS:
    """High-water RSS (VmHWM) of every process under ``root``, sampled every 50 ms."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.peaks: dict[int, tuple[str, int]] = {}  # pid -> (role, kB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _tree(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    with open(f"/proc/{name}/stat") as fh:
                        ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError):
                    continue
                children.setdefault(ppid, []).append(int(name))
        out, todo = [], [self.root]
        while todo:
            pid = todo.pop()
            out.append(pid)
            todo += children.get(pid, [])
        return out

    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            for pid in self._tree():
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                except OSError:
                    continue
                hwm = next((int(line.split()[1]) for line in status.splitlines()
                            if line.startswith("VmHWM:")), 0)
                if b"python" not in cmd.split(b" ")[0]:
                    continue
                role = "controller" if pid == self.root else "worker"  # execnet's popen workers
                if hwm > self.peaks.get(pid, ("", 0))[1]:
                    self.peaks[pid] = (role, hwm)

    def stop(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join()
        worst: dict[str, int] = {}
        for role, kb in self.peaks.values():
            worst[role] = max(worst.get(role, 0), kb)
        return worst


def pytest_run(argv: list[str], cwd: Path, expect: int | None,
               memory: bool = False) -> tuple[float, dict[str, int]]:
    """Wall time of one whole pytest process (and peak memory); it must pass ``expect`` tests."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "pytest", *COMMON, *argv], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    rss = PeakRSS(proc.pid) if memory else None
    out, err = proc.communicate()
    elapsed = time.perf_counter() - start
    peaks = rss.stop() if rss else {}
    if expect is not None and (proc.returncode != 0 or f"{expect} passed" not in out):
        raise SystemExit(f"run failed: {argv[:6]}...\n{out[-3000:]}{err[-2000:]}")
    return elapsed, peaks


def ours(lab: SSHLab, urls: list[str]) -> list[str]:
    return ["--hosts", ",".join(urls), "--ssh-key", str(lab.key_file), "--ssh-known-hosts",
            str(lab.known_hosts)]


def theirs(lab: SSHLab, urls: list[str]) -> list[str]:
    return ["-p", "no:psdirect", "--hosts", ",".join(u.replace("ssh://", "paramiko://")
                                                     for u in urls),
            "--ssh-identity-file", str(lab.key_file)]


def median_runs(argvs: dict[str, list[str]], cwd: Path, expect: int, rounds: int
                ) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in argvs}
    for _ in range(rounds):  # interleaved, so machine noise hits every side alike
        for name, argv in argvs.items():
            times[name].append(pytest_run(argv, cwd, expect)[0])
    return {name: statistics.median(t) for name, t in times.items()}


def sshd_memory_kb(lab: SSHLab) -> tuple[float, float]:
    """Mean RSS and PSS (kB) of the lab's sshd listeners."""
    assert lab.state is not None
    rss, pss = [], []
    for host in lab.state.hosts:
        text = Path(f"/proc/{host.pid}/smaps_rollup").read_text()
        values = {line.split(":")[0]: int(line.split()[1]) for line in text.splitlines()[1:]}
        rss.append(values["Rss"])
        pss.append(values["Pss"])
    return statistics.mean(rss), statistics.mean(pss)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--skip-testinfra-fleet", action="store_true",
                        help="leave out (b)'s testinfra side (the slowest part)")
    args = parser.parse_args()
    w = args.workers
    with tempfile.TemporaryDirectory() as tmp:
        lab = SSHLab(Path(tmp) / "lab", hosts=args.hosts,
                     user=os.environ.get("PSDIRECT_LAB_USER", "psdbench"),
                     subnet=os.environ.get("PSDIRECT_LAB_SUBNET"))
        start = time.perf_counter()
        hosts = lab.up(ready_timeout=60)
        up_s = time.perf_counter() - start
        urls = [h.url for h in hosts]
        twenty, ten = Path(tmp) / "twenty", Path(tmp) / "ten"
        for folder, text in ((twenty, SUITE.format(paths=PATHS, user=lab.user, packages=PACKAGES,
                                                   commands=COMMANDS)), (ten, TEN)):
            folder.mkdir()
            (folder / "test_checks.py").write_text(text)
        try:
            rss, pss = sshd_memory_kb(lab)
            a = median_runs({"ours": ours(lab, urls[:3]), "testinfra": theirs(lab, urls[:3])},
                            twenty, 60, args.rounds)
            fifty = urls[:50]
            b_ours = median_runs({"ours": ["-n", str(w), *ours(lab, fifty)]}, twenty,
                                 20 * len(fifty), max(1, args.rounds // 2))["ours"]
            b_ti = None if args.skip_testinfra_fleet else pytest_run(
                ["-n", str(w), *theirs(lab, fifty)], twenty, 20 * len(fifty))[0]
            fleet = ["-n", str(w), "--throttle-limit", "32"]
            s_time = statistics.median(pytest_run([*fleet, *ours(lab, urls[:w]), "-k", "nothing"],
                                                  ten, None)[0] for _ in range(3))
            wave = statistics.median(pytest_run([*fleet, *ours(lab, urls[:w])], ten, 10 * w)[0]
                                     for _ in range(3))
            waves = statistics.median(pytest_run([*fleet, *ours(lab, urls[:2 * w])], ten,
                                                 20 * w)[0] for _ in range(3))
            plain, plain_mem = pytest_run(["--throttle-limit", "32", *ours(lab, urls)], ten,
                                          10 * len(urls), memory=True)
            growth: dict[int, float] = {}
            peaks: dict[str, int] = {}
            for n in sorted({10, 50, 100, args.hosts}):
                if n <= len(urls):
                    growth[n], mem = pytest_run([*fleet, *ours(lab, urls[:n])], ten, 10 * n,
                                                memory=n == args.hosts)
                    peaks = mem or peaks
        finally:
            lab.down()
    n = args.hosts
    h = max(waves - wave, 1e-3)
    ideal = wave + h * (math.ceil(n / w) - 1)
    print(f"lab: {n} sshd hosts up in {up_s:.1f} s; sshd listener RSS {rss / 1024:.1f} MiB, "
          f"PSS {pss / 1024:.2f} MiB per host")
    print(f"(a) 3 hosts x 20 checks, pytest process   : ours {a['ours']:.2f} s, testinfra "
          f"(paramiko) {a['testinfra']:.2f} s  -> {a['testinfra'] / a['ours']:.1f}x "
          f"(median of {args.rounds})")
    if b_ti is not None:
        print(f"(b) 50 hosts x 20 checks, -n {w}         : ours {b_ours:.2f} s, testinfra "
              f"(paramiko) {b_ti:.2f} s  -> {b_ti / b_ours:.1f}x")
    else:
        print(f"(b) 50 hosts x 20 checks, -n {w}         : ours {b_ours:.2f} s (testinfra skipped)")
    print(f"(c) {n} hosts x 10 checks, -n {w} --throttle-limit 32: {growth[n]:.2f} s; ideal "
          f"W1 + H x (ceil({n}/{w}) - 1) = {wave:.2f} + {h:.3f} x {math.ceil(n / w) - 1} = "
          f"{ideal:.2f} s -> {growth[n] / ideal:.2f}x of ideal (empty run S = {s_time:.2f} s)")
    print(f"    peak RSS: controller {peaks.get('controller', 0) / 1024:.0f} MiB, "
          f"worker {peaks.get('worker', 0) / 1024:.0f} MiB")
    print(f"    without xdist, one process, --throttle-limit 32: {plain:.2f} s, peak RSS "
          f"{plain_mem.get('controller', 0) / 1024:.0f} MiB")
    base = growth[min(growth)]
    for count, took in sorted(growth.items()):
        extra = (took - s_time) / count
        print(f"(d) {count:4d} hosts: {took:6.2f} s  ({extra * 1000:6.1f} ms per host above "
              f"the empty run; x{took / base:.2f} of 10 hosts)")


if __name__ == "__main__":
    main()
