"""Command-line options and ini keys (group "psdirect"), parsed into targets and settings.

Everything is checked at configure time: a bad URL, a missing key file or an unreadable
inventory is a ``pytest.UsageError`` naming the bad value, before any test is collected.
"""

from __future__ import annotations

import argparse
import os
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar, cast

import pytest

from ..errors import PSDirectError, TargetSpecError
from ..inventory import Inventory, load_inventory
from ..powershell.wsman_options import AUTHS, computer_name_url, connection_uri_url, parse_winrm
from ..settings import Settings, parse_size, validate_timeout
from ..targets import Target, check_scheme, parse_target
from ..transports import TransportRegistry

T = TypeVar("T")


def _option_type(check: Callable[[str, str], T], name: str) -> Callable[[str], T]:
    """An argparse ``type=`` that runs ``check`` and turns its ValueError into a usage error."""

    def parse(text: str) -> T:
        try:
            return check(text, name)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = name  # argparse names the type in some messages
    return parse


def addoptions(parser: pytest.Parser) -> None:
    """Register the psdirect option group and ini keys."""
    group = parser.getgroup("psdirect", "pytest-psdirect: targets, credentials, sessions")
    # testinfra's plugin defines these too; testinfra_compat has removed its options by now.
    group.addoption("--hosts", action="append", default=[], metavar="URLS",
                    help="comma-separated target URLs, e.g. 'ssh://admin@10.0.0.5,local://' "
                         "(repeatable; schemes: local, ssh)")
    group.addoption("--ssh-config", metavar="PATH", help="OpenSSH client config to read")
    group.addoption("--ssh-host", action="append", default=[], metavar="USER@HOST[:PORT]",
                    help="an SSH target (repeatable)")
    group.addoption("--inventory", metavar="FILE", help="TOML inventory of named targets")
    # WinRM, named as Invoke-Command names them (-ComputerName, -ConnectionUri, ...)
    group.addoption("--computer-name", action="append", default=[], metavar="[USER@]HOST",
                    help="a WinRM target (repeatable, comma lists): winrm://HOST")
    group.addoption("--connection-uri", action="append", default=[], metavar="URI",
                    help="a WinRM endpoint, e.g. https://srv01:5986/wsman (repeatable)")
    group.addoption("--configuration-name", metavar="NAME",
                    help="PowerShell session configuration for --computer-name/--connection-uri "
                         "targets (default Microsoft.PowerShell)")
    group.addoption("--winrm-auth", metavar="AUTH",
                    type=_option_type(_winrm_auth, "--winrm-auth"),
                    help="negotiate (default), kerberos, ntlm, basic, certificate or credssp")
    group.addoption("--winrm-port", metavar="PORT", type=_option_type(_port, "--winrm-port"),
                    help="WinRM port for --computer-name (default 5985, 5986 with --winrm-ssl)")
    group.addoption("--winrm-ssl", action="store_true", default=False,
                    help="https for --computer-name targets (-UseSSL)")
    group.addoption("--winrm-insecure-certificates", action="store_true", default=False,
                    help="do not validate WinRM TLS certificates (prints a warning; labs only)")
    # PowerShell Direct, named as Invoke-Command names them (-VMName, -VMId)
    group.addoption("--vm-name", action="append", default=[], metavar="NAME",
                    help="a Hyper-V VM reached with PowerShell Direct (repeatable, comma lists): "
                         "vm://NAME; needs a credential of an account in the guest")
    group.addoption("--vm-id", action="append", default=[], metavar="GUID",
                    help="a Hyper-V VM by id (repeatable, comma lists): vmid://GUID")
    group.addoption("--container-id", action="append", default=[], metavar="ID",
                    help="a container (repeatable, comma lists): a running podman/docker container "
                         "(container://ID), or with --hyperv-host a Windows container on that "
                         "host, as Invoke-Command -ContainerId; no credential")
    group.addoption("--run-as-administrator", action="store_true", default=False,
                    help="--container-id sessions run as administrator (-RunAsAdministrator; "
                         "refused for VMs, as PowerShell refuses it)")
    group.addoption("--hyperv-host", metavar="HOST",
                    help="the Hyper-V host of --vm-name/--vm-id VMs and --container-id "
                         "containers: a winrm://, pwsh+ssh:// or pwsh:// URL, or a name (WinRM); "
                         "default: this machine (a local pwsh)")
    group.addoption("--hyperv-host-credential", metavar="REF",
                    help="credential for the Hyper-V host session: env:PREFIX, file:PATH#NAME or "
                         "keyring:SERVICE (the VM's own credential comes from --credential-env)")
    group.addoption("--ssh-key", metavar="PATH", help="private key for SSH targets")
    group.addoption("--ssh-known-hosts", metavar="PATH", help="extra known_hosts file")
    group.addoption("--ssh-insecure-host-keys", action="store_true", default=None,
                    help="accept unknown SSH host keys (prints a warning; test labs only)")
    group.addoption("--credential-env", metavar="PREFIX",
                    help="read the credential from PREFIX_USERNAME / PREFIX_PASSWORD")
    group.addoption("--psdirect-connect-timeout", metavar="SECONDS",
                    type=_option_type(validate_timeout, "--psdirect-connect-timeout"),
                    help="bound on connecting and authenticating (default 10)")
    group.addoption("--psdirect-command-timeout", metavar="SECONDS",
                    type=_option_type(validate_timeout, "--psdirect-command-timeout"),
                    help="default bound on one command (default 300, at most 7 days)")
    group.addoption("--psdirect-max-output", metavar="SIZE",
                    type=_option_type(parse_size, "--psdirect-max-output"),
                    help="cap on one command's output, e.g. 1048576, 256M, 1G (default 256M); "
                         "past it the command is killed")
    parser.addini("psdirect_hosts", "default target URLs when no option names any",
                  type="linelist", default=[])
    parser.addini("psdirect_inventory", "default inventory file", default="")
    parser.addini("psdirect_connect_timeout", "connect timeout in seconds", default="10")
    parser.addini("psdirect_command_timeout", "default command timeout in seconds", default="300")
    parser.addini("psdirect_max_output", "cap on one command's output (256M, 1G...)",
                  default="256M")


@dataclass(frozen=True)
class Selection:
    """Targets named on the command line/ini/inventory, and the inventory if any."""

    targets: tuple[Target, ...]
    inventory: Inventory | None


def read_selection(config: pytest.Config, registry: TransportRegistry) -> Selection:
    """Parse every target source; raise ``pytest.UsageError`` naming the first bad value."""
    try:
        inventory_path = config.getoption("inventory") or config.getini("psdirect_inventory")
        inventory = load_inventory(Path(inventory_path)) if inventory_path else None
        hosts = config.getoption("hosts") or []
        hosts = [hosts] if isinstance(hosts, str) else hosts
        specs = [s for opt in hosts for s in opt.split(",") if s.strip()]
        specs += [f"ssh://{s}" for s in config.getoption("ssh_host")]
        specs += winrm_specs(config)
        specs += vm_specs(config)
        targets = [parse_target(s) for s in specs]
        if inventory:
            targets += inventory.targets
        if not targets:
            targets = [parse_target(s) for s in config.getini("psdirect_hosts")]
    except PSDirectError as exc:
        raise pytest.UsageError(str(exc)) from None
    unique = tuple({t.url: t for t in targets}.values())
    for target in unique:
        check_target(target, registry)
    return Selection(unique, inventory)


def _winrm_auth(text: str, name: str) -> str:
    if text.lower() not in AUTHS:
        raise ValueError(f"{name}={text!r} is not one of {', '.join(AUTHS)}")
    return text.lower()


def _port(text: str, name: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"{name}={text!r} is not a port number (1-65535)")
    return int(text)


def winrm_specs(config: pytest.Config) -> list[str]:
    """``--computer-name``/``--connection-uri`` as winrm:// URLs, with the WinRM options."""
    common = {"auth": config.getoption("winrm_auth"),
              "configuration_name": config.getoption("configuration_name"),
              "insecure": bool(config.getoption("winrm_insecure_certificates"))}
    names = [n for opt in config.getoption("computer_name") for n in opt.split(",") if n.strip()]
    specs = [computer_name_url(n, port=config.getoption("winrm_port"),
                               ssl=bool(config.getoption("winrm_ssl")), **common) for n in names]
    specs += [connection_uri_url(u, **common) for u in config.getoption("connection_uri")]
    for spec in specs:
        parse_winrm(parse_target(spec))  # a bad combination is a usage error now
    return specs


def vm_target_url(spec: str, hyperv_host: str | None) -> str:
    """A VM name, ``vm://NAME`` or ``vmid://GUID`` (``psdirect doctor``'s argument) as a URL with
    the host as ``?host=``.

    >>> vm_target_url("web 01", "hv01")
    'vm://web%2001?host=winrm://hv01'
    """
    from ..transports.psdirect import hyperv_host_target

    options = (("host", hyperv_host_target(hyperv_host).url),) if hyperv_host else ()
    if "://" in spec:
        target = parse_target(spec)
        return Target(target.scheme, target.host, options=tuple(sorted(
            {**dict(target.options), **dict(options)}.items()))).url
    return Target("vm", urllib.parse.quote(spec, safe="-._~"), options=options).url


def vm_specs(config: pytest.Config) -> list[str]:
    """``--vm-name``/``--vm-id`` as vm:// / vmid:// URLs, with ``--hyperv-host`` as ``?host=``.

    A name is percent-encoded whole, so quotes, ``$``, backticks, ``;`` and inner spaces survive;
    a comma separates names (a name holding a comma: ``--hosts vm://a%2Cb``).
    """
    host = config.getoption("hyperv_host")
    options: list[tuple[str, str]] = []
    if host:  # imported only then: it brings psrpcore (~50 ms of every run's start)
        from ..transports.psdirect import hyperv_host_target

        options.append(("host", hyperv_host_target(host).url))
    ref = config.getoption("hyperv_host_credential")
    if ref:
        options.append(("host_credential", ref))
    names = [n.strip() for opt in config.getoption("vm_name") for n in opt.split(",") if n.strip()]
    ids = [i.strip() for opt in config.getoption("vm_id") for i in opt.split(",") if i.strip()]
    names += [spec.name for spec in config.getoption("vm_provision", None) or []]  # lifecycle.py
    if config.getoption("hypervisor", None) == "qemu":
        from .qemu_options import qemu_urls

        specs = qemu_urls(config, names, ids)
    else:
        specs = [Target("vm", urllib.parse.quote(n, safe="-._~"), options=tuple(options)).url
                 for n in names]
        specs += [Target("vmid", urllib.parse.quote(i, safe="-._~"), options=tuple(options)).url
                  for i in ids]
    containers = [c.strip() for opt in config.getoption("container_id")
                  for c in opt.split(",") if c.strip()]
    admin = [("run_as_administrator", "1")] if config.getoption("run_as_administrator") else []
    if admin and not containers:
        raise pytest.UsageError("--run-as-administrator: Parameter set cannot be resolved using "
                                "the specified named parameters. (-RunAsAdministrator is only "
                                "for --container-id, not for VMs)")
    runtime = config.getoption("container_runtime", None)  # plugin/containers.py
    if runtime and not host:  # a Linux container (no Hyper-V/container host named)
        options.append(("runtime", runtime))
    specs += [Target("container", c, options=tuple(sorted(options + admin))).url
              for c in containers]
    return specs


def check_target(target: Target, registry: TransportRegistry) -> None:
    """Usage error unless a transport serves ``target`` and its ``?timeout=`` is valid."""
    try:
        check_scheme(target, registry.schemes())
    except TargetSpecError as exc:
        raise pytest.UsageError(str(exc)) from None
    if target.scheme == "container":
        from ..transports.container import check_container_target

        try:
            check_container_target(target)
        except TargetSpecError as exc:
            where = f"inventory target {target.name!r}: " if target.name else ""
            raise pytest.UsageError(f"{where}{exc}") from None
    if target.scheme in ("vm", "vmid") or (target.scheme == "container" and target.option("host")):
        from ..transports.psdirect import hyperv_host_target

        try:
            hyperv_host_target(target.option("host"))
        except TargetSpecError as exc:
            where = f"inventory target {target.name!r}: " if target.name else ""
            raise pytest.UsageError(f"{where}{target.url}: {exc}") from None
    if target.scheme == "winrm":
        try:
            parse_winrm(target)
        except TargetSpecError as exc:
            where = f"inventory target {target.name!r}: " if target.name else ""
            raise pytest.UsageError(f"{where}{exc}") from None
    timeout = target.option("timeout")
    if timeout is not None:
        where = f"inventory target {target.name!r}: " if target.name else ""
        try:
            validate_timeout(timeout, "?timeout")
        except ValueError as exc:
            raise pytest.UsageError(f"{where}{target.url}: {exc}") from None


def _pick_value(config: pytest.Config, inventory: Inventory | None, option: str, key: str,
                ini: str, check: Callable[[object, str], T]) -> T:
    """Command line wins over the inventory's [defaults], which win over the ini key."""
    value = config.getoption(option)
    if value is not None:
        return cast(T, value)  # already checked by the option's type
    if inventory is not None and key in inventory.defaults:
        source, raw = f"inventory {inventory.path} [defaults] {key}", inventory.defaults[key]
    else:
        source, raw = f"ini {ini}", config.getini(ini)
    try:
        return check(raw, source)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def _existing(label: str, path: str | None) -> str | None:
    if path and not os.path.isfile(os.path.expanduser(path)):
        raise pytest.UsageError(f"{label} {path}: no such file")
    return path


def read_settings(config: pytest.Config, inventory: Inventory | None) -> Settings:
    """Command line wins over the inventory's [defaults], which win over ini keys.

    Paths from the inventory were checked when it was loaded; paths from the command line are
    checked here. Every bad value is a ``pytest.UsageError`` naming it and where it came from.
    """
    defaults = dict(inventory.defaults) if inventory else {}

    def pick(option: str, key: str) -> str | None:
        label = "--" + option.replace("_", "-")
        value = _existing(label, config.getoption(option)) or defaults.get(key)
        return str(value) if value else None

    return Settings(
        connect_timeout=_pick_value(config, inventory, "psdirect_connect_timeout",
                                    "connect_timeout", "psdirect_connect_timeout",
                                    validate_timeout),
        command_timeout=_pick_value(config, inventory, "psdirect_command_timeout",
                                    "command_timeout", "psdirect_command_timeout",
                                    validate_timeout),
        max_output=_pick_value(config, None, "psdirect_max_output", "max_output",
                               "psdirect_max_output", parse_size),
        ssh_key=pick("ssh_key", "ssh_key"), ssh_config=pick("ssh_config", "ssh_config"),
        known_hosts=pick("ssh_known_hosts", "known_hosts"),
        insecure_host_keys=bool(config.getoption("ssh_insecure_host_keys")))
