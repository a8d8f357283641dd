"""The pytest plugin (entry point ``pytest11: psdirect``): options, hooks, parametrization.

Every test that uses the ``target`` fixture runs once per target; the test id and the
``xdist_group`` are the target's canonical URL, so under ``-n`` each target's tests stay on one
worker (``--dist loadgroup`` becomes the default) and one session per target serves them all.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from .. import hookspecs
from ..errors import PSDirectError, TargetSpecError
from ..targets import Target, check_scheme, parse_target
from ..transports import TransportRegistry
from .credentials import ExplicitProviders, FallbackProviders
from .options import addoptions, read_selection, read_settings
from .report import TargetReport
from .state import REGISTRY, SELECTION, SETTINGS, NoTarget

#: fixtures and pytest_unconfigure live in their own module, loaded as a plugin by pytest.
pytest_plugins = ["pytest_psdirect.plugin.fixtures", "pytest_psdirect.plugin.redact"]



TESTINFRA_PLUGIN = "pytest11.testinfra"


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)
    # testinfra's own plugin would fight over --hosts and the ``host`` fixture; ours provides
    # ``host`` as target.testinfra, so testinfra suites run unchanged over our sessions.
    pluginmanager.set_blocked(TESTINFRA_PLUGIN)


def pytest_addoption(parser: pytest.Parser) -> None:
    addoptions(parser)


@pytest.hookimpl(wrapper=True)
def pytest_cmdline_main(config: pytest.Config) -> Generator[None, object, object]:
    """Under ``-n``, default to ``--dist loadgroup`` so each target stays on one worker."""
    if getattr(config.option, "numprocesses", None) and getattr(config.option, "dist", "") == "no":
        config.option.dist = "loadgroup"
    return (yield)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist workers re-parse argv, so tell them the controller chose ``loadgroup``."""
    node.workerinput["psdirect_loadgroup"] = node.config.getoption("dist") == "loadgroup"


def xdist_group(target: Target) -> str:
    """Group name of a target; xdist splits a node id's group at the last ``@``, so no ``@``.

    >>> xdist_group(parse_target("ssh://admin@web01"))
    'ssh://admin%40web01'
    """
    return target.url.replace("@", "%40")


def pytest_configure(config: pytest.Config) -> None:
    workerinput = getattr(config, "workerinput", None)
    if workerinput and workerinput.get("psdirect_loadgroup"):
        config.option.loadgroup = True
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


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "_psdirect_target" not in metafunc.fixturenames:
        return
    config = metafunc.config
    mark = metafunc.definition.get_closest_marker("targets")
    try:
        targets = _marker_targets(config, mark) if mark else list(config.stash[SELECTION].targets)
    except PSDirectError as exc:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: @pytest.mark.targets: {exc}") from None
    if not targets:
        why = ("no target has all tags of @pytest.mark.targets" if mark else
               "no targets given: pass --hosts URL, --ssh-host, --inventory FILE, set "
               "psdirect_hosts in the ini file, or mark the test with @pytest.mark.targets")
        params = [pytest.param(NoTarget(why), id="no-target")]
    else:
        params = [pytest.param(t, id=t.url, marks=pytest.mark.xdist_group(xdist_group(t))) for t in targets]
    metafunc.parametrize("_psdirect_target", params, indirect=True, scope="session")
