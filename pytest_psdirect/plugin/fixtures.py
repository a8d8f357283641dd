"""Two-tier fixtures: ``make_session`` owns every connection, ``target`` is a thin view.

Override ``make_session`` in a conftest to change how sessions open; tests stay the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from ..credentials.secret import Credential
from ..errors import PSDirectError
from ..pool import SessionPool
from ..sessions import TargetSession
from ..targets import Target
from .fleet import FLEET
from .state import POOL, REGISTRY, SETTINGS, NoTarget, fail_with
from .testinfra_compat import testinfra_host

if TYPE_CHECKING:  # testinfra is imported when a test asks for ``host`` (~25 ms otherwise)
    import testinfra.host


def pool_of(config: pytest.Config) -> SessionPool:
    """This process's session pool, made on first use (throttled by :mod:`.fleet`'s gate)."""
    if POOL not in config.stash:
        hook = config.hook

        def credential_for(target: Target, required: bool) -> Credential | None:
            result: Credential | None = hook.pytest_psdirect_credential(
                target=target, config=config, required=required)
            return result

        def opened(session: TargetSession) -> None:
            hook.pytest_psdirect_session_opened(target=session.spec, session=session)

        def closed(target: Target) -> None:
            hook.pytest_psdirect_session_closed(target=target)

        fleet = config.stash.get(FLEET, None)
        config.stash[POOL] = SessionPool(config.stash[REGISTRY], config.stash[SETTINGS],
                                         credential_for, opened, closed,
                                         fleet.gate if fleet is not None else None)
    return config.stash[POOL]


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A target whose connection broke is reopened before the test, not inside it; a target
    that cannot be reached makes the test error at once with the plugin's own one-line reason."""
    callspec = getattr(item, "callspec", None)
    spec = callspec.params.get("_psdirect_target") if callspec else None
    if not isinstance(spec, Target) or POOL not in item.config.stash:
        return
    try:
        session = item.config.stash[POOL].peek(spec)
        if session is not None:
            session.ensure_open()
    except PSDirectError as exc:
        fail_with(exc)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Close sessions even when the run was interrupted before fixture teardown."""
    if POOL in config.stash:
        config.stash[POOL].close_all()


@pytest.fixture(scope="session")
def make_session(pytestconfig: pytest.Config) -> Iterator[SessionPool]:
    """Session-scoped factory: ``make_session.get(parse_target(url))`` -> open TargetSession."""
    pool = pool_of(pytestconfig)
    yield pool
    pool.close_all()


@pytest.fixture(scope="session")
def _psdirect_target(request: pytest.FixtureRequest) -> Target | NoTarget:
    """The target of this parametrized test (set by pytest_generate_tests)."""
    param: Target | NoTarget = request.param
    return param


@pytest.fixture(scope="session")
def target_spec(_psdirect_target: Target | NoTarget) -> Target:
    """The :class:`~pytest_psdirect.targets.Target` of this test, without opening it."""
    if isinstance(_psdirect_target, NoTarget):
        pytest.fail(_psdirect_target.reason, pytrace=False)
    return _psdirect_target


@pytest.fixture(scope="session")
def target(make_session: SessionPool, target_spec: Target) -> TargetSession:
    """An open session to this test's target (one per target per process, reused)."""
    try:
        return make_session.get(target_spec)
    except PSDirectError as exc:
        fail_with(exc)


@pytest.fixture(scope="session")
def host(target: TargetSession, pytestconfig: pytest.Config) -> testinfra.host.Host:
    """testinfra's ``host`` fixture, over our session: existing testinfra suites run unchanged."""
    return testinfra_host(target, pytestconfig)  # with --sudo/--sudo-user if given
