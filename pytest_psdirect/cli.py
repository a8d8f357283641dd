"""``psdirect``: a local lab to try the tool, and one-off commands against a target.

Examples::

    psdirect lab up                 # 3 sshd hosts in network namespaces; writes .lab/inventory.toml
    pytest example_suites/linux_baseline --inventory .lab/inventory.toml
    psdirect run local:// -- uname -a
    psdirect lab down
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import PSDirectError
from .lab.sshlab import SSHLab
from .sessions import SessionPool
from .settings import Settings
from .targets import parse_target
from .transports import TransportRegistry


def _lab(args: argparse.Namespace) -> int:
    workdir = Path(args.dir)
    if args.action == "up":
        hosts = SSHLab(workdir, hosts=args.hosts, subnet=args.subnet, user=args.user).up()
        for host in hosts:
            print(f"{host.name}  {host.url}  {'hardened' if host.hardened else 'weak'}")
        print(f"inventory: {workdir / 'inventory.toml'}")
        print(f"stop it:   psdirect lab down --dir {workdir}")
        print(f"try: pytest example_suites/linux_baseline --inventory {workdir / 'inventory.toml'}")
        return 0
    if not (workdir / "lab.json").exists():
        print(f"no lab recorded in {workdir}", file=sys.stderr)
        return 1
    SSHLab.load(workdir).down()
    print("lab removed: processes, namespaces, links, user and files")
    return 0


def _run(args: argparse.Namespace) -> int:
    settings = Settings(ssh_key=args.ssh_key, known_hosts=args.ssh_known_hosts)
    pool = SessionPool(TransportRegistry(), settings, lambda target, required: None)
    try:
        result = pool.get(parse_target(args.target)).run(" ".join(args.command))
    finally:
        pool.close_all()
    sys.stdout.buffer.write(result.stdout_bytes)
    sys.stderr.buffer.write(result.stderr_bytes)
    return result.rc


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``psdirect`` command."""
    parser = argparse.ArgumentParser(prog="psdirect", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    lab = sub.add_parser("lab", help="start or stop the local SSH lab (root)")
    lab.add_argument("action", choices=["up", "down"])
    lab.add_argument("--dir", default=".lab", help="where the lab keeps its files (default .lab)")
    lab.add_argument("--hosts", type=int, default=3, help="number of sshd hosts (default 3)")
    lab.add_argument("--subnet", default=None,
                     help="first three octets of the lab's /24 (default: the first free 10.N.0, "
                          "N >= 200)")
    lab.add_argument("--user", default="psdtest",
                     help="the hosts' test user, created by the lab and removed by lab down; "
                          "must not exist yet (default psdtest)")
    lab.set_defaults(func=_lab)
    run = sub.add_parser("run", help="run one shell command on a target")
    run.add_argument("target", help="target URL, e.g. local:// or ssh://user@host")
    run.add_argument("command", nargs="+", help="the command (after --)")
    run.add_argument("--ssh-key")
    run.add_argument("--ssh-known-hosts")
    run.set_defaults(func=_run)
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except PSDirectError as exc:
        print(f"psdirect: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
