"""Benchmark: a real QEMU guest (TCG) through its agent; figures measured side by side in one run.

    python bench/qemu.py [--rounds 100] [--boots 2]

Prints:
  * time from starting QEMU to the first successful guest command (fresh boot of the lab guest)
  * restore-from-checkpoint (QMP snapshot-load, agent answering, first command) vs that boot
  * per command: ``target.run("true")`` on an open qemu:// session vs the agent's bare round
    trip (a raw socket: guest-exec of ``/bin/sh -c true`` + guest-exec-status polled in a tight
    loop, no psdirect code), interleaved rounds, median and p90
"""

from __future__ import annotations

import argparse
import base64
import json
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pytest_psdirect import Settings
from pytest_psdirect.lab.qemu import QemuLab
from pytest_psdirect.targets import parse_target
from pytest_psdirect.transports.qemu import QemuTransport


class BareAgent:
    """The agent's protocol with nothing of ours: guest-exec, then status polled at once."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(10)
        self.sock.connect(path)
        self.io = self.sock.makefile("rwb")
        self.sock.sendall(b"\xff")
        self._send("guest-sync-delimited", id=99)
        while self.io.read(1) != b"\xff":
            pass
        self.io.readline()

    def _send(self, command: str, **arguments: object) -> None:
        self.io.write(json.dumps({"execute": command, "arguments": arguments}).encode() + b"\n")
        self.io.flush()

    def call(self, command: str, **arguments: object) -> dict[str, object]:
        self._send(command, **arguments)
        return json.loads(self.io.readline())["return"]  # type: ignore[no-any-return]

    def run(self, cmd: str) -> bytes:
        pid = self.call("guest-exec", path="/bin/sh", arg=["-c", cmd], **{"capture-output": True})
        while True:
            status = self.call("guest-exec-status", pid=pid["pid"])
            if status["exited"]:
                return base64.b64decode(str(status.get("out-data", "")))

    def close(self) -> None:
        self.io.close()
        self.sock.close()


def first_command(lab: QemuLab) -> float:
    """Seconds from QEMU's start to the first command's result (lab's start + wait + run)."""
    lab.host.stop(lab.vm, force=True)
    began = time.monotonic()
    lab.host.start(lab.vm)
    lab.host.wait_ready(lab.vm, 120, None)
    run_once(lab, "true")
    return time.monotonic() - began


def run_once(lab: QemuLab, cmd: str) -> str:
    t = QemuTransport(parse_target(lab.url), None, Settings(connect_timeout=10))
    t.open()
    try:
        return t.run(cmd, timeout=30).stdout
    finally:
        t.close()


def restore_to_command(lab: QemuLab, name: str) -> float:
    began = time.monotonic()
    lab.host.restore(lab.vm, name)
    lab.host.wait_ready(lab.vm, 60, None)
    run_once(lab, "true")
    return time.monotonic() - began


def per_command(lab: QemuLab, rounds: int) -> tuple[list[float], list[float]]:
    ours, bare = [], []
    t = QemuTransport(parse_target(lab.url), None, Settings(connect_timeout=10))
    for _ in range(rounds):
        t.open()
        began = time.perf_counter()
        t.run("true", timeout=30)
        ours.append(time.perf_counter() - began)
        t.close()  # one agent client at a time: hand the socket to the bare client
        agent = BareAgent(str(lab.vm.qga))
        began = time.perf_counter()
        agent.run("true")
        bare.append(time.perf_counter() - began)
        agent.close()
    return ours, bare


def ms(values: list[float], q: float = 0.5) -> str:
    ordered = sorted(values)
    return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000:.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--boots", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="psd-bench-qemu-") as folder:
        lab = QemuLab(Path(folder))
        lab.up()
        try:
            boots = [first_command(lab) for _ in range(args.boots)]
            lab.host.checkpoint(lab.vm, "bench")
            restores = [restore_to_command(lab, "bench") for _ in range(args.boots)]
            ours, bare = per_command(lab, args.rounds)
        finally:
            lab.down()
    boot, restore = statistics.median(boots), statistics.median(restores)
    print(f"QEMU {'TCG'}: start -> first guest command: median {boot:.2f} s over {len(boots)} boots")
    print(f"restore checkpoint -> first guest command: median {restore:.2f} s "
          f"({boot / restore:.0f}x faster than a fresh boot)")
    print(f"run('true') on an open qemu:// session: median {ms(ours)}, p90 {ms(ours, 0.9)}")
    print(f"bare guest-exec + tight status polling:  median {ms(bare)}, p90 {ms(bare, 0.9)}")
    print(f"overhead of ours: {(statistics.median(ours) - statistics.median(bare)) * 1000:+.1f} ms "
          f"per command (ratio {statistics.median(ours) / statistics.median(bare):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
