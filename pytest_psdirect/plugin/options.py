"""Command-line options and ini keys (group "psdirect"), parsed into targets and settings.

Everything is checked at configure time: a bad URL, a missing key file or an unreadable
inventory is a ``pytest.UsageError`` naming the bad value, before any test is collected.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..errors import PSDirectError
from ..inventory import Inventory, load_inventory
from ..settings import Settings
from ..targets import Target, parse_target
from ..transports import TransportRegistry


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than 0 seconds")
    return value


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
    group.addoption("--ssh-key", metavar="PATH", help="private key for SSH targets")
    group.addoption("--ssh-known-hosts", metavar="PATH", help="extra known_hosts file")
    group.addoption("--ssh-insecure-host-keys", action="store_true", default=None,
                    help="accept unknown SSH host keys (prints a warning; test labs only)")
    group.addoption("--credential-env", metavar="PREFIX",
                    help="read the credential from PREFIX_USERNAME / PREFIX_PASSWORD")
    group.addoption("--psdirect-connect-timeout", type=_seconds, metavar="SECONDS",
                    help="bound on connecting and authenticating (default 10)")
    group.addoption("--psdirect-command-timeout", type=_seconds, metavar="SECONDS",
                    help="default bound on one command (default 300)")
    parser.addini("psdirect_hosts", "default target URLs when no option names any",
                  type="linelist", default=[])
    parser.addini("psdirect_inventory", "default inventory file", default="")
    parser.addini("psdirect_connect_timeout", "connect timeout in seconds", default="10")
    parser.addini("psdirect_command_timeout", "default command timeout in seconds", default="300")


@dataclass(frozen=True)
class Selection:
    """Targets named on the command line/ini/inventory, and the inventory if any."""

    targets: tuple[Target, ...]
    inventory: Inventory | None


def _ini_seconds(config: pytest.Config, key: str) -> float:
    raw = str(config.getini(key))
    try:
        return _seconds(raw)
    except argparse.ArgumentTypeError as exc:
        raise pytest.UsageError(f"ini {key}: {exc}") from None


def read_selection(config: pytest.Config, registry: TransportRegistry) -> Selection:
    """Parse every target source; raise ``pytest.UsageError`` naming the first bad value."""
    try:
        inventory_path = config.getoption("inventory") or config.getini("psdirect_inventory")
        inventory = load_inventory(Path(inventory_path)) if inventory_path else None
        hosts = config.getoption("hosts") or []
        hosts = [hosts] if isinstance(hosts, str) else hosts
        specs = [s for opt in hosts for s in opt.split(",") if s.strip()]
        specs += [f"ssh://{s}" for s in config.getoption("ssh_host")]
        targets = [parse_target(s) for s in specs]
        if inventory:
            targets += inventory.targets
        if not targets:
            targets = [parse_target(s) for s in config.getini("psdirect_hosts")]
    except PSDirectError as exc:
        raise pytest.UsageError(str(exc)) from None
    unique = tuple({t.url: t for t in targets}.values())
    for target in unique:
        if target.scheme not in registry.schemes():
            raise pytest.UsageError(
                f"{target.url}: no transport for {target.scheme}:// targets in this version "
                f"(available: {', '.join(registry.schemes())})")
    return Selection(unique, inventory)


def read_settings(config: pytest.Config, inventory: Inventory | None) -> Settings:
    """Command line wins over the inventory's [defaults], which win over ini keys."""
    defaults = dict(inventory.defaults) if inventory else {}

    def pick(option: str, key: str) -> str | None:
        value = config.getoption(option) or defaults.get(key)
        return str(value) if value else None

    key, ssh_config = pick("ssh_key", "ssh_key"), pick("ssh_config", "ssh_config")
    for label, path in (("--ssh-key", key), ("--ssh-config", ssh_config)):
        if path and not os.path.isfile(os.path.expanduser(path)):
            raise pytest.UsageError(f"{label} {path}: no such file")
    connect = config.getoption("psdirect_connect_timeout") or defaults.get("connect_timeout")
    command = config.getoption("psdirect_command_timeout") or defaults.get("command_timeout")
    return Settings(
        connect_timeout=float(connect or _ini_seconds(config, "psdirect_connect_timeout")),
        command_timeout=float(command or _ini_seconds(config, "psdirect_command_timeout")),
        ssh_key=key, ssh_config=ssh_config,
        known_hosts=pick("ssh_known_hosts", "known_hosts"),
        insecure_host_keys=bool(config.getoption("ssh_insecure_host_keys")))
