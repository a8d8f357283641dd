"""Benchmark: per-command overhead on a real podman container, measured side by side in one run.

    python bench/containers.py [--rounds 200]

Starts one container of the offline-built debian test image (and one busybox: no python) with
the lab code, then, interleaved round by round:
  * ``target.run("true")`` over our container:// session (the command agent over one
    ``podman exec -i``), vs a bare ``podman exec ID sh -c true`` per command;
  * the same on busybox (our fallback: one exec per command) vs bare ``podman exec``;
  * a testinfra check (``host.file('/etc/passwd').exists``) over our session vs testinfra's
    own podman backend (``podman://ID``), which runs one ``podman exec`` per command;
  * session open time (runtime detection + agent start).
Prints medians, p90 and the ratios. The containers are removed at the end.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from tempfile import mkdtemp

import testinfra

from pytest_psdirect import SessionPool, Settings, TransportRegistry, parse_target
from pytest_psdirect.lab.container_image import ensure_image
from pytest_psdirect.lab.containers import ContainerLab


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def summary(label: str, samples: list[float]) -> float:
    median = statistics.median(samples)
    p90 = sorted(samples)[int(len(samples) * 0.9)]
    print(f"  {label:<46} median {median * 1000:8.2f} ms   p90 {p90 * 1000:8.2f} ms")
    return median


def bare_exec(name: str) -> None:
    subprocess.run(["podman", "exec", name, "sh", "-c", "true"], check=True,
                   stdin=subprocess.DEVNULL, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    labs = {kind: ContainerLab(Path(mkdtemp(prefix=f"psd-bench-{kind}-")))
            for kind in ("debian", "busybox")}
    try:
        names = {}
        for kind, lab in labs.items():
            lab.up(1, image=ensure_image(kind))
            assert lab.state is not None
            names[kind] = lab.state.names[0]
        pool = SessionPool(TransportRegistry(), Settings(), lambda t, required: None)
        url = f"container://{names['debian']}?runtime=podman"
        opened = timed(lambda: pool.get(parse_target(url)))
        ours = pool.get(parse_target(url))
        fallback = pool.get(parse_target(f"container://{names['busybox']}?runtime=podman"))
        theirs = testinfra.get_host(f"podman://{names['debian']}")
        ours_host = ours.testinfra
        samples: dict[str, list[float]] = {k: [] for k in (
            "ours", "bare", "fb", "fb_bare", "ti_ours", "ti_theirs")}
        rare = max(1, args.rounds // 4)  # the exec-per-command cases are ~100x slower
        for i in range(args.rounds):
            samples["ours"].append(timed(lambda: ours.run("true")))
            samples["ti_ours"].append(timed(lambda: ours_host.file("/etc/passwd").exists))
            if i < rare:
                samples["bare"].append(timed(lambda: bare_exec(names["debian"])))
                samples["fb"].append(timed(lambda: fallback.run("true")))
                samples["fb_bare"].append(timed(lambda: bare_exec(names["busybox"])))
                samples["ti_theirs"].append(timed(lambda: theirs.file("/etc/passwd").exists))
        version = subprocess.run(["podman", "--version"], capture_output=True, text=True)
        print(f"podman {version.stdout.split()[-1]}; {args.rounds} rounds "
              f"(exec-per-command cases: {rare}), interleaved")
        print(f"  session open (runtime detection + agent start): {opened * 1000:.1f} ms")
        ours_m = summary("container:// run('true') [agent]", samples["ours"])
        bare_m = summary("bare `podman exec ID sh -c true`", samples["bare"])
        fb_m = summary("container:// run('true') [busybox, no python]", samples["fb"])
        fb_bare_m = summary("bare `podman exec` [busybox]", samples["fb_bare"])
        ti_ours_m = summary("testinfra file().exists over container://", samples["ti_ours"])
        ti_theirs_m = summary("testinfra file().exists, podman:// backend", samples["ti_theirs"])
        print("ratios:")
        print(f"  bare podman exec / our agent exec:         {bare_m / ours_m:8.1f}x")
        print(f"  our fallback / bare podman exec (busybox): {fb_m / fb_bare_m:8.2f}x")
        print(f"  testinfra podman backend / ours:           {ti_theirs_m / ti_ours_m:8.1f}x")
        pool.close_all()
    finally:
        for lab in labs.values():
            lab.down()


if __name__ == "__main__":
    main()
