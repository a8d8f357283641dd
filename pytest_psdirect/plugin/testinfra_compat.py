"""pytest-psdirect replaces pytest-testinfra's pytest plugin; testinfra's *modules* stay in use.

Both plugins define ``--hosts``, ``--ssh-config`` and the ``host`` fixture, and pytest loads
entry points in file-system order, so either may register first. The design, identical in any order:

* **testinfra registers first** (entry point, ``-p pytest11.testinfra``, ``-p testinfra.plugin``):
  when ours registers, testinfra's plugin is unregistered and its options are removed from the
  parser (:func:`retire_options`).
* **testinfra comes later**: its plugin slots (``pytest11.testinfra``, the entry point's name, and
  ``testinfra.plugin``, its module name) already hold a stand-in (:func:`claim_slots`), so pytest
  skips it; even an explicit ``-p`` cannot load it, as ``-p`` only unblocks *blocked* names.

Then our plugin defines all of testinfra's options itself (:func:`addoptions`): each works over our
sessions or is a ``pytest.UsageError`` saying what to use instead (:func:`configure`). testinfra
URLs map to ours (:func:`from_testinfra`), ``testinfra_hosts`` selects a module's targets
(:func:`module_targets`) and ``--sudo``/``--sudo-user`` wrap the ``host`` fixture's commands
(:func:`testinfra_host`). ``-p no:psdirect`` gives testinfra's own plugin back.
"""

from __future__ import annotations

import logging
import os
import sys
import types
import urllib.parse
from typing import TYPE_CHECKING, Any

import pytest

from ..errors import PSDirectError, TargetSpecError
from ..targets import Target, parse_target

if TYPE_CHECKING:
    import testinfra.host

    from ..sessions import TargetSession

#: Names under which pytest registers testinfra's plugin: its entry point and its module.
TESTINFRA_SLOTS = ("pytest11.testinfra", "testinfra.plugin")
TESTINFRA_MODULE = "testinfra.plugin"
#: Every option testinfra's plugin defines (10.x); ours defines each of them.
TESTINFRA_OPTIONS = ("--connection", "--hosts", "--ssh-config", "--ssh-extra-args",
                     "--ssh-identity-file", "--sudo", "--sudo-user", "--ansible-inventory",
                     "--force-ansible", "--nagios")

_RUN_TESTINFRA = "or run testinfra's own plugin with -p no:psdirect"
#: testinfra connection types we do not serve, and what to use instead.
_UNSUPPORTED = {
    "ansible": "list the hosts as ssh:// URLs (--hosts) or in a TOML --inventory",
    "salt": "list the minions as ssh:// URLs (--hosts) or in a TOML --inventory",
    "kubectl": "use ssh:// or local:// targets",
    "openshift": "use ssh:// or local:// targets",
    "lxc": "use ssh:// or local:// targets",
    "chroot": "use ssh:// or local:// targets",
}
_SSH_LIKE = ("paramiko", "ssh", "safe-ssh")
#: testinfra's container backends: docker://NAME -> container://NAME?runtime=docker
_CONTAINER_LIKE = ("docker", "podman")
#: URL options of testinfra -> ours (``None``: refused with the reason given).
_URL_OPTIONS: dict[str, str | None] = {
    "ssh_identity_file": "key", "timeout": "timeout", "sudo": "sudo", "sudo_user": "sudo_user",
    "controlpersist": "",  # our session is one persistent connection already: nothing to keep
    "ssh_config": None, "ansible_inventory": None, "force_ansible": None,
}


class _Replaced:
    """Stand-in that holds one of testinfra's plugin slots (see the module docstring)."""

    def __init__(self, slot: str) -> None:
        self.slot = slot

    def __repr__(self) -> str:
        return f"<testinfra plugin {self.slot!r} replaced by pytest-psdirect>"


def _is_testinfra_plugin(plugin: object) -> bool:
    return isinstance(plugin, types.ModuleType) and plugin.__name__ == TESTINFRA_MODULE


def claim_slots(pluginmanager: pytest.PytestPluginManager) -> None:
    """Unregister testinfra's plugin wherever it is registered, and hold its slots."""
    for name, plugin in list(pluginmanager.list_name_plugin()):
        if _is_testinfra_plugin(plugin):
            pluginmanager.unregister(plugin, name)
    for slot in TESTINFRA_SLOTS:
        if isinstance(pluginmanager.get_plugin(slot), _Replaced):
            continue
        pluginmanager.unblock(slot)
        pluginmanager.register(_Replaced(slot), slot)


def retire_options(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    """Remove options testinfra's plugin added to ``parser`` (a no-op when it did not register).

    pytest 8 builds its argparse parser from ``parser._groups`` on each parse; pytest 9 keeps a
    live one (``parser.optparser``, one ``_arggroup`` per group), so the actions go too.
    """
    config = pluginmanager.get_plugin("pytestconfig")
    for group in list(parser._groups):
        if group.name != "testinfra":
            continue
        for option in list(group.options):
            if not set(option.names()) <= set(TESTINFRA_OPTIONS):
                continue
            group.options.remove(option)
            if config is not None and hasattr(config.option, option.dest):
                delattr(config.option, option.dest)  # its default; ours sets its own
            for name in option.names():
                getattr(parser, "_opt2dest", {}).pop(name, None)
        arggroup = getattr(group, "_arggroup", None)
        optparser = getattr(parser, "optparser", None)
        if arggroup is not None and optparser is not None:
            for action in list(arggroup._group_actions):
                if set(action.option_strings) <= set(TESTINFRA_OPTIONS):
                    arggroup._remove_action(action)
                    for name in action.option_strings:
                        optparser._option_string_actions.pop(name, None)
        if not group.options:
            parser._groups.remove(group)
            if arggroup is not None and optparser is not None:
                optparser._action_groups.remove(arggroup)


def addoptions(parser: pytest.Parser) -> None:
    """testinfra's options that are not already ours (``--hosts``, ``--ssh-config``)."""
    group = parser.getgroup("psdirect")
    group.addoption("--ssh-identity-file", metavar="PATH",
                    help="testinfra's name for --ssh-key")
    group.addoption("--connection", metavar="TYPE",
                    help="testinfra's backend for --hosts without a scheme: paramiko, ssh and "
                         "safe-ssh mean ssh://, local means local://")
    group.addoption("--sudo", action="store_true", default=False,
                    help="run the host fixture's commands with sudo (testinfra's --sudo)")
    group.addoption("--sudo-user", metavar="USER",
                    help="run the host fixture's commands with sudo -u USER")
    group.addoption("--nagios", action="store_true", default=False,
                    help="print a Nagios plugin status line; exit 0 (OK) or 2 (CRITICAL)")
    group.addoption("--ssh-extra-args", metavar="ARGS",
                    help="not supported (no ssh client process): put the options in --ssh-config")
    group.addoption("--ansible-inventory", metavar="FILE",
                    help="not supported: list the hosts in a TOML --inventory")
    group.addoption("--force-ansible", action="store_true", default=False,
                    help="not supported: list the hosts in a TOML --inventory")


def _usage(option: str, why: str) -> pytest.UsageError:
    return pytest.UsageError(f"{option}: {why} ({_RUN_TESTINFRA})")


def _connection_scheme(connection: str, where: str) -> str:
    if connection in _SSH_LIKE:
        return "ssh"
    if connection == "local":
        return "local"
    if connection in _UNSUPPORTED:
        raise TargetSpecError(f"{where}: testinfra's {connection} backend is not supported by "
                              f"pytest-psdirect", hint=f"{_UNSUPPORTED[connection]}, {_RUN_TESTINFRA}")
    return connection  # ours (e.g. winrm, vm) or unknown: parse_target names the bad scheme


def from_testinfra(spec: str, connection: str | None = None) -> str:
    """Turn a testinfra host spec into one of our target URLs (ours pass unchanged).

    >>> from_testinfra("paramiko://admin@web01:2222?ssh_identity_file=/k&sudo=true")
    'ssh://admin@web01:2222?key=/k&sudo=true'
    >>> from_testinfra("web01", connection="paramiko"), from_testinfra("local://")
    ('ssh://web01', 'local://')
    >>> from_testinfra("docker://www-data@web"), from_testinfra("web", connection="podman")
    ('container://www-data@web?runtime=docker', 'container://web?runtime=podman')
    """
    text = spec.strip()
    if "://" not in text:
        if not connection:
            return text
        scheme = _connection_scheme(connection, f"--connection {connection}")
        if scheme in _CONTAINER_LIKE:
            return f"container://{text}?runtime={scheme}"
        return "local://" if scheme == "local" else f"{scheme}://{text}"
    parts = urllib.parse.urlsplit(text)
    scheme = _connection_scheme(parts.scheme.lower(), spec)
    if scheme in _CONTAINER_LIKE:
        if parts.query:
            raise TargetSpecError(f"target {spec!r}: testinfra's URL options are not supported "
                                  "for containers", hint=f"write {scheme}://[USER@]NAME, "
                                  f"{_RUN_TESTINFRA}")
        return f"container://{parts.netloc}?runtime={scheme}"
    if scheme not in ("ssh", "local"):
        return text
    options = []
    for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        ours = _URL_OPTIONS.get(key, key)
        if ours is None:
            raise TargetSpecError(f"target {spec!r}: testinfra's URL option {key} is not supported",
                                  hint="pass --ssh-config FILE once, or list the hosts in a TOML "
                                       f"--inventory, {_RUN_TESTINFRA}")
        if ours == "key":
            value = os.path.expanduser(value)
        if ours:
            options.append(f"{ours}={value}")
    netloc = "" if scheme == "local" else parts.netloc
    query = "&".join(options)
    return f"{scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")


def configure(config: pytest.Config) -> None:
    """Check and map testinfra's options, before our plugin reads the targets."""
    opt = config.option
    for name, why in (("ssh_extra_args", "pytest-psdirect runs no ssh client process; put these "
                                         "options in an OpenSSH config file and pass --ssh-config"),
                      ("ansible_inventory", "list the hosts as ssh:// URLs or in a TOML --inventory"),
                      ("force_ansible", "list the hosts as ssh:// URLs or in a TOML --inventory")):
        if getattr(opt, name, None):
            raise _usage(f"--{name.replace('_', '-')}", f"not supported; {why}")
    identity = getattr(opt, "ssh_identity_file", None)
    if identity:
        if opt.ssh_key and os.path.expanduser(opt.ssh_key) != os.path.expanduser(identity):
            raise pytest.UsageError("--ssh-identity-file and --ssh-key name different keys; "
                                    "pass one of them")
        opt.ssh_key = identity
    hosts = opt.hosts or []
    connection = getattr(opt, "connection", None)
    try:
        if connection:
            _connection_scheme(connection, f"--connection {connection}")
            if connection == "local" and not hosts and not opt.ssh_host and not opt.inventory:
                hosts = ["local://"]
        specs = [s for item in ([hosts] if isinstance(hosts, str) else hosts)
                 for s in item.split(",") if s.strip()]
        opt.hosts = [from_testinfra(s, connection) for s in specs]
    except PSDirectError as exc:
        raise pytest.UsageError(str(exc)) from None
    if config.getoption("verbose", 0) > 1:  # as testinfra's plugin does
        logging.getLogger("testinfra").setLevel(logging.DEBUG)


def module_targets(metafunc: pytest.Metafunc) -> list[Target] | None:
    """Targets of the module's ``testinfra_hosts``, unless the command line names targets."""
    hosts = getattr(metafunc.module, "testinfra_hosts", None)
    opt = metafunc.config.option
    if hosts is None or opt.hosts or opt.ssh_host or opt.inventory:
        return None
    connection = getattr(opt, "connection", None)
    try:
        return [parse_target(from_testinfra("local://" if h is None else str(h), connection))
                for h in hosts]
    except PSDirectError as exc:
        raise pytest.UsageError(f"{metafunc.module.__name__}: testinfra_hosts: {exc}") from None


def testinfra_host(target: TargetSession, config: pytest.Config) -> testinfra.host.Host:
    """The ``host`` fixture's Host: ``target.testinfra``, with sudo when --sudo/--sudo-user ask."""
    sudo_user = config.getoption("sudo_user", None)
    if not (config.getoption("sudo", False) or sudo_user):
        return target.testinfra
    from ..testinfra_backend import make_host

    return make_host(target, sudo=True, sudo_user=sudo_user)


@pytest.hookimpl(trylast=True)  # after the terminal reporter exists
def pytest_configure(config: pytest.Config) -> None:
    """``--nagios``: testinfra's own reporter (status line first, exit 0 or 2)."""
    if not config.getoption("nagios", False):
        return
    from testinfra.plugin import NagiosReporter, SpooledTemporaryFile

    reporter = config.pluginmanager.getplugin("terminalreporter")
    if reporter is None:
        return
    out = SpooledTemporaryFile(encoding=sys.stdout.encoding)
    config.pluginmanager.unregister(reporter)
    config.pluginmanager.register(reporter.__class__(config, out), "terminalreporter")
    config.pluginmanager.register(NagiosReporter(out), "nagiosreporter")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    reporter: Any = session.config.pluginmanager.getplugin("nagiosreporter")
    if reporter is not None:
        session.exitstatus = reporter.report()

