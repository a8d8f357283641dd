"""Benchmark of the bounds (run as root: it starts a one-host SSH lab). Prints figures, asserts nothing.

    python bench/robustness.py [--defaults]

  * peak RSS of the controller for 200 MB of stdout, on local:// and over SSH (ratio to 200 MB)
  * how far a flooding command overshoots timeout=2 (cap out of the way)
  * wall time of a 20-test pytest module whose host vanishes (link down) after its 2nd test,
    with short timeouts (--psdirect-command-timeout 2 --psdirect-connect-timeout 2) and, with
    --defaults, with the default ones (300 s + 10 s: takes about 5 minutes)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from xml.etree import ElementTree

from pytest_psdirect.lab.sshlab import SSHLab

_RSS = """
import resource, sys
from pytest_psdirect import SessionPool, Settings, TransportRegistry, parse_target
settings = Settings(ssh_key=sys.argv[2] or None, known_hosts=sys.argv[3] or None)
pool = SessionPool(TransportRegistry(), settings, lambda t, r: None)
session = pool.get(parse_target(sys.argv[1]))
session.run("true")
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
r = session.run("head -c 200000000 /dev/zero", timeout=120)
assert len(r.stdout_bytes) == 200_000_000
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) * 1024 / 200e6)
pool.close_all()
"""

_FLOOD = """
import time
from pytest_psdirect import CommandTimeout, SessionPool, Settings, TransportRegistry, parse_target
pool = SessionPool(TransportRegistry(), Settings(max_output=1 << 40), lambda t, r: None)
session = pool.get(parse_target("local://"))
start = time.monotonic()
try:
    session.run("while :; do echo flood; done", timeout=2)
except CommandTimeout:
    pass
print(time.monotonic() - start - 2)
pool.close_all()
"""

_VANISH = """
import subprocess
def test_00(target):
    assert target.run("true").rc == 0
def test_01(target):
    subprocess.run(["ip", "-n", "{netns}", "link", "set", "eth0", "down"], check=True)
""" + "".join(f"def test_{i:02d}(target):\n    target.run('true')\n" for i in range(2, 20))


def _python(code: str, *args: str) -> str:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          check=True, timeout=300).stdout.strip()


def vanish_seconds(lab: SSHLab, host_url: str, netns: str,
                   extra: list[str]) -> tuple[float, float]:
    """(wall time of the whole pytest run, seconds spent in the 18 tests after the vanish)."""
    with tempfile.TemporaryDirectory() as tmp:
        module = Path(tmp) / "test_vanish.py"
        module.write_text(textwrap.dedent(_VANISH.format(netns=netns)))
        xml = Path(tmp) / "junit.xml"
        start = time.monotonic()
        subprocess.run([sys.executable, "-m", "pytest", str(module), "-q", "-p", "no:cacheprovider",
                        "--hosts", host_url, "--ssh-key", str(lab.key_file), f"--junitxml={xml}",
                        "--ssh-known-hosts", str(lab.known_hosts), *extra],
                       capture_output=True, text=True, timeout=900, cwd=tmp)
        elapsed = time.monotonic() - start
        subprocess.run(["ip", "-n", netns, "link", "set", "eth0", "up"], check=True)
        cases = ElementTree.parse(xml).getroot().iter("testcase")
        after = sum(float(c.get("time", 0)) for c in cases if c.get("name", "")[5:7] >= "02")
        return elapsed, after


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--defaults", action="store_true", help="also time the default timeouts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        lab = SSHLab(Path(tmp), hosts=1)
        (host,) = lab.up()
        try:
            local_rss = float(_python(_RSS, "local://", "", ""))
            ssh_rss = float(_python(_RSS, host.url, str(lab.key_file), str(lab.known_hosts)))
            flood = float(_python(_FLOOD))
            short = vanish_seconds(lab, host.url, host.netns, [
                "--psdirect-command-timeout", "2", "--psdirect-connect-timeout", "2"])
            default = vanish_seconds(lab, host.url, host.netns, []) if args.defaults else None
        finally:
            lab.down()
    print(f"peak RSS growth for 200 MB of stdout, local://  : {local_rss:5.2f} x the output")
    print(f"peak RSS growth for 200 MB of stdout, ssh       : {ssh_rss:5.2f} x the output")
    print(f"flood on local:// overshoots timeout=2 by       : {flood:5.2f} s")
    print(f"vanished host, 20 tests, timeouts 2 s + 2 s     : {short[1]:5.1f} s in the 18 tests "
          f"after it (bound 4 s + 0.5 s grace); {short[0]:.1f} s wall")
    if default is not None:
        print(f"vanished host, 20 tests, default 300 s + 10 s   : {default[1]:5.1f} s in the 18 "
              f"tests after it; {default[0]:.1f} s wall")


if __name__ == "__main__":
    main()
