"""``psdirect``: a local lab to try the tool, and one-off commands against a target.

Examples::

    psdirect lab up                 # 3 sshd hosts in network namespaces; writes .lab/inventory.toml
    pytest example_suites/linux_baseline --inventory .lab/inventory.toml
    psdirect run local:// -- uname -a
    psdirect run --inventory .lab/inventory.toml lab1 -- uname -a    # options before --
    psdirect shell --inventory .lab/inventory.toml lab1               # interactive
    psdirect lab down
    psdirect doctor web01 --hyperv-host hv01 --credential-env VM   # PowerShell Direct checks

``psdirect run`` streams the command's output as it arrives and exits with its status;
psdirect's own errors (bad option or target, no credential, cannot connect) exit 255, as ssh's do.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, Protocol, cast

from .credentials import providers
from .credentials.secret import Credential, register_secret_env
from .errors import PSDirectError, TargetSpecError
from .inventory import Inventory, load_inventory
from .lab.containers import STATE_FILE as CONTAINERS_STATE
from .lab.containers import ContainerLab
from .lab.qemu import QemuLab
from .lab.sshlab import SSHLab
from .pool import SessionPool
from .results import CommandResult
from .settings import Settings, parse_size, validate_timeout
from .targets import Target, check_scheme, parse_target
from .transports import TransportRegistry


def _lab(args: argparse.Namespace) -> int:
    """``lab up``: sshd hosts (``--hosts``), containers (``--containers``) and a QEMU VM
    (``--vm``), each printed with the target to use; ``lab down``: whatever ``up`` recorded."""
    workdir = Path(args.dir)
    if args.action == "up":
        if args.hosts:
            hosts = SSHLab(workdir, hosts=args.hosts, subnet=args.subnet, user=args.user).up()
            for host in hosts:
                print(f"{host.name}  {host.url}  {'hardened' if host.hardened else 'weak'}")
            print(f"inventory: {workdir / 'inventory.toml'}")
            print(f"try: pytest example_suites/linux_baseline --inventory {workdir / 'inventory.toml'}")
        if args.containers:  # lab/containers.py
            urls = ContainerLab(workdir).up(args.containers)
            print(f"containers: --hosts '{','.join(urls)}'")
        if args.vm:  # lab/qemu.py
            url = QemuLab(workdir / "qemu").up()
            print(f"vm  {url}  (QEMU guest agent)")
            print(f"try: pytest SUITE --hosts '{url}'")
        print(f"stop it:   psdirect lab down --dir {workdir}")
        return 0
    found = [p.name for p in (workdir / "lab.json", workdir / CONTAINERS_STATE, workdir / "qemu")
             if p.exists()]
    if not found:
        print(f"no lab recorded in {workdir}", file=sys.stderr)
        return 1
    if "qemu" in found:
        QemuLab(workdir / "qemu").down()
        (workdir / "qemu").rmdir()
        print("QEMU VM removed: its process, overlay disk and sockets")
    if CONTAINERS_STATE in found:
        ContainerLab.load(workdir).down()
        print("containers removed")
    if "lab.json" in found:
        SSHLab.load(workdir).down()
        print("lab removed: processes, namespaces, links, user and files")
    return 0


#: Exit status of ``psdirect run`` for its own errors (bad option, target, credential,
#: connection), as ``ssh`` does; any other status is the remote command's own.
ERROR_EXIT = 255
#: Exit status after Ctrl-C, as a shell reports a command ended by SIGINT.
INTERRUPTED_EXIT = 130


class _Streaming(Protocol):
    """``TargetSession.run`` with its ``stream=`` keyword: called with (1 or 2, bytes)."""

    def run(self, cmd: str, *, timeout: float | None = ...,
            stream: Callable[[int, bytes], None]) -> CommandResult: ...


def _write(stream_no: int, chunk: bytes) -> None:
    out = sys.stdout.buffer if stream_no == 1 else sys.stderr.buffer
    out.write(chunk)
    out.flush()


def _pick_target(args: argparse.Namespace, inventory: Inventory | None) -> Target:
    names = {t.name: t for t in inventory.targets if t.name} if inventory else {}
    if args.target in names:
        return names[args.target]
    if "://" not in args.target and "@" not in args.target:
        known = ", ".join(sorted(names)) or "none: no --inventory given"
        hint = ("put psdirect's options before --: everything after -- is the remote command"
                if "--inventory" in args.command else
                f"write ssh://{args.target}, user@{args.target}, or give --inventory FILE")
        raise TargetSpecError(f"{args.target!r} is neither an inventory name nor a URL "
                              f"(inventory names: {known})", hint=hint)
    return parse_target(args.target)


def _settings(args: argparse.Namespace, inventory: Inventory | None) -> Settings:
    """Options win over the inventory's [defaults]; paths given as options must exist."""
    defaults = dict(inventory.defaults) if inventory else {}
    for label, path in (("--ssh-key", args.ssh_key), ("--ssh-known-hosts", args.ssh_known_hosts),
                        ("--ssh-config", args.ssh_config)):
        if path and not os.path.isfile(os.path.expanduser(path)):
            raise TargetSpecError(f"{label} {path}: no such file", hint="check the path")

    def pick(value: object, key: str) -> Any:
        return value if value is not None else defaults.get(key)

    optional = {"connect_timeout": pick(args.connect_timeout, "connect_timeout"),
                "command_timeout": pick(args.command_timeout, "command_timeout"),
                "max_output": args.max_output}
    return Settings(ssh_key=pick(args.ssh_key, "ssh_key"),
                    ssh_config=pick(args.ssh_config, "ssh_config"),
                    known_hosts=pick(args.ssh_known_hosts, "known_hosts"),
                    insecure_host_keys=args.ssh_insecure_host_keys,
                    **{k: v for k, v in optional.items() if v is not None})


def _credential(args: argparse.Namespace, inventory: Inventory | None, target: Target,
                required: bool) -> Credential | None:
    """The plugin's order: inventory reference, --credential-env, then (only when required)
    keyring and a prompt on a terminal."""
    if target.credential_ref:
        base = inventory.path.parent if inventory else Path()
        return providers.resolve_reference(target.credential_ref, base)
    if args.credential_env:
        return providers.from_env(args.credential_env)
    if not required:
        return None
    found = providers.from_keyring(f"pytest-psdirect/{target.host or 'local'}", target.user)
    if found is None and providers.can_prompt():
        found = providers.prompt(target.url, target.user)
    return found


def _open_pool(args: argparse.Namespace) -> tuple[SessionPool, Target]:
    """The pool and target ``run`` and ``shell`` work on, from the shared target options."""
    if args.credential_env:
        register_secret_env(f"{args.credential_env}_PASSWORD")
    inventory = load_inventory(Path(args.inventory)) if args.inventory else None
    target = _pick_target(args, inventory)
    registry = TransportRegistry()
    check_scheme(target, registry.schemes())
    pool = SessionPool(registry, _settings(args, inventory),
                       lambda t, required: _credential(args, inventory, t, required))
    return pool, target


def _run(args: argparse.Namespace) -> int:
    """Run one command; stream its output as it arrives; exit with its status."""
    pool, target = _open_pool(args)
    try:
        session = cast(_Streaming, pool.get(target))
        result = session.run(" ".join(args.command), timeout=args.command_timeout, stream=_write)
    finally:
        pool.close_all()
    return result.rc


def _shell(args: argparse.Namespace) -> int:
    """An interactive session on one target until ``exit``; exit with the last status."""
    from .repl.console import interact

    pool, target = _open_pool(args)
    try:
        return interact(pool.get(target), timeout=args.command_timeout)
    finally:
        pool.close_all()


def _doctor(args: argparse.Namespace) -> int:
    """Walk the PowerShell Direct troubleshooting checks for one VM; 0 when all pass."""
    from .hypervisors.hyperv.doctor import Doctor
    from .plugin.options import vm_target_url

    if args.credential_env:
        register_secret_env(f"{args.credential_env}_PASSWORD")
    target = parse_target(vm_target_url(args.target, args.hyperv_host))
    if target.scheme not in ("vm", "vmid"):
        raise TargetSpecError(f"{args.target!r} is not a VM", hint="write a VM name, "
                              "vm://NAME or vmid://GUID")
    settings = Settings(**({"connect_timeout": args.connect_timeout}
                           if args.connect_timeout else {}))
    credential = _credential(args, None, target, required=True)
    doctor = Doctor(target, credential, settings, lambda f: print(f.line(), flush=True))
    return 0 if doctor.run() else 1


def _arg_type(check: Callable[[str, str], object], name: str) -> Callable[[str], object]:
    def parse(text: str) -> object:
        try:
            return check(text, name)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


class _Parser(argparse.ArgumentParser):
    """Usage errors of ``psdirect run`` exit 255, apart from the remote command's statuses."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(ERROR_EXIT if self.prog.endswith(" run") else 2, f"{self.prog}: error: {message}\n")


def _add_run(sub: Any) -> _Parser:
    run = sub.add_parser("run", help="run one shell command on a target",
                         description="Run one command; its exit status is psdirect's, and "
                                     f"psdirect's own errors exit {ERROR_EXIT} (as ssh does).")
    run.add_argument("target", help="inventory name, URL (local://, ssh://user@host) or user@host")
    run.add_argument("command", nargs="+", help="the command, after --")
    _add_target_options(run)
    run.set_defaults(func=_run)
    return run  # type: ignore[no-any-return]  # argparse's add_parser is untyped here


def _add_shell(sub: Any) -> None:
    shell = sub.add_parser("shell", help="interactive session on a target (Enter-PSSession)",
                           description="A prompt on the target: a shell (cd and exported "
                                       "variables carry over) or, on PowerShell targets, a "
                                       "PowerShell prompt. Ctrl-C ends the running command; "
                                       "exit or Ctrl-D leaves.")
    shell.add_argument("target", help="inventory name, URL (local://, ssh://user@host) or "
                                      "user@host")
    shell.set_defaults(func=_shell, command=[])
    _add_target_options(shell)


def _add_target_options(run: argparse.ArgumentParser) -> None:
    """The options that say how to reach a target (``run`` and ``shell`` share them)."""
    run.add_argument("--inventory", metavar="FILE", help="TOML inventory of named targets")
    run.add_argument("--credential-env", metavar="PREFIX",
                     help="read the credential from PREFIX_USERNAME / PREFIX_PASSWORD")
    run.add_argument("--ssh-key", metavar="PATH", help="private key for SSH targets")
    run.add_argument("--ssh-known-hosts", metavar="PATH", help="extra known_hosts file")
    run.add_argument("--ssh-insecure-host-keys", action="store_true",
                     help="accept unknown SSH host keys (test labs only)")
    run.add_argument("--ssh-config", metavar="PATH", help="OpenSSH client config to read")
    run.add_argument("--psdirect-connect-timeout", dest="connect_timeout", metavar="SECONDS",
                     type=_arg_type(validate_timeout, "--psdirect-connect-timeout"))
    run.add_argument("--psdirect-command-timeout", dest="command_timeout", metavar="SECONDS",
                     type=_arg_type(validate_timeout, "--psdirect-command-timeout"))
    run.add_argument("--psdirect-max-output", dest="max_output", metavar="SIZE",
                     type=_arg_type(parse_size, "--psdirect-max-output"))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``psdirect`` command."""
    parser = _Parser(prog="psdirect", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True, parser_class=_Parser)
    lab = sub.add_parser("lab", help="start or stop the local SSH lab (root)")
    lab.add_argument("action", choices=["up", "down"])
    lab.add_argument("--dir", default=".lab", help="where the lab keeps its files (default .lab)")
    lab.add_argument("--hosts", type=int, default=3, help="number of sshd hosts (default 3)")
    lab.add_argument("--containers", type=int, default=0, metavar="N",
                     help="also start N podman/docker containers (default 0)")
    lab.add_argument("--vm", action="store_true",
                     help="also start a small QEMU VM reached through its guest agent "
                          "(qemu://psdirect-vm; --hosts 0 for the VM alone)")
    lab.add_argument("--subnet", default=None,
                     help="first three octets of the lab's /24 (default: the first free 10.N.0, "
                          "N >= 200)")
    lab.add_argument("--user", default="psdtest",
                     help="the hosts' test user, created by the lab and removed by lab down; "
                          "must not exist yet (default psdtest)")
    lab.set_defaults(func=_lab)
    run = _add_run(sub)
    _add_shell(sub)
    doctor = sub.add_parser("doctor", help="walk the PowerShell Direct troubleshooting checks "
                                           "for one VM")
    doctor.add_argument("target", help="VM name, vm://NAME or vmid://GUID")
    doctor.add_argument("--hyperv-host", metavar="HOST",
                        help="winrm://, pwsh+ssh:// or pwsh:// URL or a name (WinRM); default: "
                             "this machine")
    doctor.add_argument("--credential-env", metavar="PREFIX",
                        help="the guest account: PREFIX_USERNAME / PREFIX_PASSWORD")
    doctor.add_argument("--psdirect-connect-timeout", dest="connect_timeout", metavar="SECONDS",
                        type=_arg_type(validate_timeout, "--psdirect-connect-timeout"))
    doctor.set_defaults(func=_doctor)
    args, extra = parser.parse_known_args(argv)
    if extra:  # argparse reports these from the top parser: `run` must still exit 255
        (run if args.cmd == "run" else parser).error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        code: int = args.func(args)
    except PSDirectError as exc:
        print(f"psdirect: {exc}", file=sys.stderr)
        return ERROR_EXIT if args.cmd == "run" else 2
    except KeyboardInterrupt:  # Ctrl-C: one line, not a traceback; the session ended the command
        print("psdirect: interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT
    return code


if __name__ == "__main__":
    sys.exit(main())
