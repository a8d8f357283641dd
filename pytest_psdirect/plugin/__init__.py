"""The pytest plugin (entry point ``pytest11: psdirect``): options, hooks, parametrization.

Every test that uses the ``target`` fixture runs once per target; the test id is the target's
canonical URL. Under ``-n`` (without an explicit ``--dist``) each target's tests stay on one worker
(:class:`~.xdist_scheduling.TargetScheduling`), so one session per target serves them all, and test ids
stay exactly what they are without ``-n``.

pytest-psdirect replaces pytest-testinfra's pytest plugin, whichever of the two pytest loads first;
see :mod:`.testinfra_compat`.
"""

from __future__ import annotations

import pytest

from .. import hookspecs
from ..errors import PSDirectError, TargetSpecError
from ..targets import Target, check_scheme, parse_target
from ..transports import TransportRegistry
from . import testinfra_compat
from .credentials import ExplicitProviders, FallbackProviders
from .options import addoptions, read_selection, read_settings
from .report import TargetReport
from .state import REGISTRY, SELECTION, SETTINGS, NoTarget

#: fixtures and pytest_unconfigure live in their own module, loaded as a plugin by pytest.
#: (in import order: a module here imports only those before it, so all are assertion-rewritten)
pytest_plugins = ["pytest_psdirect.plugin.xdist_sched", "pytest_psdirect.plugin.throttle",
                  "pytest_psdirect.plugin.fleet", "pytest_psdirect.plugin.fixtures",
                  "pytest_psdirect.plugin.redact", "pytest_psdirect.plugin.lifecycle",
                  "pytest_psdirect.plugin.fleet_report",
                  "pytest_psdirect.plugin.containers", "pytest_psdirect.plugin.shell_on_fail",
                  "pytest_psdirect.plugin.compliance", "pytest_psdirect.plugin.qemu_options"]


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)
    testinfra_compat.claim_slots(pluginmanager)  # testinfra's plugin: out now, never in later
    pluginmanager.register(testinfra_compat, "psdirect-testinfra")  # its --nagios hooks


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    testinfra_compat.retire_options(parser, pluginmanager)  # if testinfra's registered first
    addoptions(parser)
    testinfra_compat.addoptions(parser)


def pytest_configure(config: pytest.Config) -> None:
    testinfra_compat.configure(config)
    config.addinivalue_line(
        "markers", "targets(*urls_or_names, tags=()): run this test against these targets "
                   "(URLs or inventory names) or only those with all the given tags")
    registry = TransportRegistry()
    config.hook.pytest_psdirect_register_transports.call_historic(kwargs={"registry": registry})
    selection = read_selection(config, registry)
    config.stash[SETTINGS] = read_settings(config, selection.inventory)
    config.stash[REGISTRY] = registry
    config.stash[SELECTION] = selection
    config.pluginmanager.register(ExplicitProviders(), "psdirect-credentials-explicit")
    config.pluginmanager.register(FallbackProviders(), "psdirect-credentials-fallback")
    config.pluginmanager.register(TargetReport(config), "psdirect-report")


def _marker_targets(config: pytest.Config, mark: pytest.Mark) -> list[Target]:
    """Targets of ``@pytest.mark.targets``: inventory names or URLs with ``://``; a bare word
    that names no inventory target is an error (it never becomes a DNS lookup)."""
    selection = config.stash[SELECTION]
    by_name = {t.name: t for t in selection.targets if t.name}
    chosen = []
    for arg in map(str, mark.args):
        if arg in by_name:
            chosen.append(by_name[arg])
        elif "://" in arg:
            chosen.append(parse_target(arg))
            check_scheme(chosen[-1], config.stash[REGISTRY].schemes())
        else:
            names = ", ".join(sorted(by_name)) or "none: no --inventory given"
            raise TargetSpecError(f"{arg!r} is neither an inventory name nor a URL "
                                  f"(inventory names: {names})",
                                  hint=f"write a URL such as ssh://{arg}, or add [targets.{arg}] "
                                       "to the inventory")
    tags = mark.kwargs.get("tags", ())
    wanted = {tags} if isinstance(tags, str) else set(tags)
    return [t for t in chosen or selection.targets if wanted <= t.tags]


def _module_targets(metafunc: pytest.Metafunc) -> list[Target]:
    """``testinfra_hosts`` of the module if it has one (and no option names targets), else ours."""
    config = metafunc.config
    targets = testinfra_compat.module_targets(metafunc)
    if targets is None:
        return list(config.stash[SELECTION].targets)
    schemes = config.stash[REGISTRY].schemes()
    for target in targets:
        if target.scheme not in schemes:
            raise pytest.UsageError(
                f"{metafunc.module.__name__}: testinfra_hosts: {target.url}: no transport for "
                f"{target.scheme}:// targets in this version (available: {', '.join(schemes)})")
    return targets


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "_psdirect_target" not in metafunc.fixturenames:
        return
    config = metafunc.config
    mark = metafunc.definition.get_closest_marker("targets")
    try:
        targets = _marker_targets(config, mark) if mark else _module_targets(metafunc)
    except PSDirectError as exc:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: @pytest.mark.targets: {exc}") from None
    if not targets:
        why = ("no target has all tags of @pytest.mark.targets" if mark else
               "no targets given: pass --hosts URL, --ssh-host, --inventory FILE, set "
               "psdirect_hosts in the ini file, or mark the test with @pytest.mark.targets")
        params = [pytest.param(NoTarget(why), id="no-target")]
    else:
        params = [pytest.param(t, id=t.url) for t in targets]
    metafunc.parametrize("_psdirect_target", params, indirect=True, scope="session")
