"""Benchmark: background jobs (``target.start``), measured side by side in one run (root: it
starts the SSH lab).

    python bench/jobs.py [--rounds 300]

Prints, on real sshd hosts of the lab (PSDIRECT_LAB_SUBNET / PSDIRECT_LAB_USER pick its subnet
and user) and on ``local://``:
  * ``target.start("true").result()`` vs ``target.run("true")``: medians, interleaved rounds,
    and the overhead of a job (its worker thread) per command
  * wall time of 20 one-second jobs started at once on 3 hosts vs the ideal 1 s
  * the same 20 on one host, and the 20 as a loop of ``run`` (what a job saves)
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from pytest_psdirect import SessionPool, Settings, TargetSession, TransportRegistry, parse_target
from pytest_psdirect.lab.sshlab import SSHLab


def interleaved_ms(session: TargetSession, rounds: int) -> tuple[list[float], list[float]]:
    """(run times, start().result() times) in ms, alternating so noise hits both alike."""
    runs, jobs = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        session.run("true")
        t1 = time.perf_counter()
        session.start("true").result()
        t2 = time.perf_counter()
        runs.append((t1 - t0) * 1000)
        jobs.append((t2 - t1) * 1000)
    return runs, jobs


def fleet_wall_s(sessions: list[TargetSession], count: int = 20) -> float:
    """Wall time of ``count`` one-second jobs spread over ``sessions``, all started at once."""
    t0 = time.perf_counter()
    jobs = [sessions[i % len(sessions)].start("sleep 1") for i in range(count)]
    for job in jobs:
        assert job.result().rc == 0
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        lab = SSHLab(Path(tmp), hosts=3, user=os.environ.get("PSDIRECT_LAB_USER", "psdtest"),
                     subnet=os.environ.get("PSDIRECT_LAB_SUBNET"))
        hosts = lab.up()
        try:
            settings = Settings(ssh_key=str(lab.key_file), known_hosts=str(lab.known_hosts))
            pool = SessionPool(TransportRegistry(), settings, lambda t, r: None)
            sessions = [pool.get(parse_target(h.url)) for h in hosts]
            local = pool.get(parse_target("local://"))
            for warm in (*sessions, local):
                warm.run("true")
                warm.start("true").result()
            ssh_run, ssh_job = interleaved_ms(sessions[0], args.rounds)
            loc_run, loc_job = interleaved_ms(local, args.rounds)
            walls = [fleet_wall_s(sessions) for _ in range(3)]
            one_host = [fleet_wall_s(sessions[:1]) for _ in range(3)]
            t0 = time.perf_counter()
            for i in range(20):
                sessions[i % 3].run("sleep 1")
            serial = time.perf_counter() - t0
            pool.close_all()
        finally:
            lab.down()
    for label, runs, jobs in (("ssh", ssh_run, ssh_job), ("local://", loc_run, loc_job)):
        r, j = statistics.median(runs), statistics.median(jobs)
        print(f"{label:9} run('true')            : {r:7.3f} ms median of {args.rounds}")
        print(f"{label:9} start('true').result() : {j:7.3f} ms median"
              f"  -> job overhead {j - r:+.3f} ms ({j / r:4.2f}x run)")
    wall, single = statistics.median(walls), statistics.median(one_host)
    print(f"20 x 'sleep 1' jobs on 3 hosts at once : {wall:6.2f} s median of 3 "
          f"(ideal 1 s -> {wall:4.2f}x ideal)")
    print(f"20 x 'sleep 1' jobs on 1 host at once  : {single:6.2f} s median of 3")
    print(f"20 x 'sleep 1' as a loop of run()      : {serial:6.2f} s "
          f"-> jobs are {serial / wall:4.1f}x faster")


if __name__ == "__main__":
    main()
