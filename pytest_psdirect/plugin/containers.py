"""Containers provisioned for a test scope: the ``container`` fixture and marker.

Example::

    pytestmark = pytest.mark.container(image="docker.io/library/debian:12")

    def test_nginx_absent(container):                  # one container for this module
        assert not container.testinfra.package("nginx").is_installed

    def test_two(make_container):                      # or start them yourself
        web = make_container("debian:12", runtime="docker")
        assert web.run("hostname").rc == 0

Every container is removed when its scope ends, also when a test failed, on Ctrl-C (pytest
still tears fixtures down) and at exit of the process (:func:`pytest_unconfigure`). Each carries
its owner's ``HOSTNAME:PID`` label, so one whose process was killed outright (``kill -9``, a
crashed xdist worker) is removed by the next run that starts a container, or by ``psdirect lab
down``.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from ..errors import PSDirectError
from ..lab import containers as lab
from ..pool import SessionPool
from ..sessions import TargetSession
from ..targets import parse_target
from .state import fail_with

log = logging.getLogger(__name__)
_STARTED = pytest.StashKey["ContainerFactory"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("psdirect")
    group.addoption("--container-runtime", choices=lab.RUNTIMES, default=None,
                    help="podman or docker for --container-id targets and the container "
                         "fixture (default: podman if installed, else docker)")
    parser.addini("psdirect_container_image", "default image of the container fixture",
                  default="")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "container(image=None, runtime=None, args=(), command=('sleep', 'infinity')): "
                   "the image (and runtime, extra `run` options, command) of the module's "
                   "`container` fixture")


@dataclass(frozen=True)
class Started:
    """A container this run started."""

    id: str
    name: str
    runtime: str

    @property
    def url(self) -> str:
        return f"container://{self.name}?runtime={self.runtime}"


class ContainerFactory:
    """Starts containers and removes every one it started (:meth:`remove_all`)."""

    def __init__(self, pool: SessionPool, default_runtime: str | None) -> None:
        self._pool = pool
        self._default_runtime = default_runtime
        self._run = f"psd-{secrets.token_hex(3)}"
        self._started: list[Started] = []
        self._reaped: set[str] = set()

    def start(self, image: str, *, runtime: str | None = None, args: tuple[str, ...] = (),
              command: tuple[str, ...] = ("sleep", "infinity")) -> Started:
        """Start a container of ``image`` running ``command`` (under ``--init``)."""
        chosen = lab.pick_runtime(runtime or self._default_runtime)
        if chosen not in self._reaped:  # once per runtime: what killed runs left behind
            self._reaped.add(chosen)
            lab.reap_orphans(chosen)
        name = f"{self._run}-c{len(self._started) + 1}"
        started = Started(lab.start(chosen, image, name=name, lab=self._run, args=args,
                                    command=command), name, chosen)
        self._started.append(started)
        return started

    def __call__(self, image: str, *, runtime: str | None = None, args: tuple[str, ...] = (),
                 command: tuple[str, ...] = ("sleep", "infinity")) -> TargetSession:
        """Start a container and return an open session to it."""
        return self.session(self.start(image, runtime=runtime, args=args, command=command))

    def session(self, started: Started) -> TargetSession:
        """An open session to a container this factory started."""
        return self._pool.get(parse_target(started.url))

    def remove(self, started: Started) -> None:
        """Remove one container now (its session is closed first)."""
        session = self._pool.peek(parse_target(started.url))
        if session is not None:
            session.close()
        if started in self._started:
            self._started.remove(started)
        left = lab.remove(started.runtime, [started.id])
        if left:
            log.warning("container %s survived `%s rm --force`", started.name, started.runtime)

    def remove_all(self) -> None:
        """Remove every container still up (teardown, interrupt, exit)."""
        for started in list(reversed(self._started)):
            try:
                self.remove(started)
            except Exception as exc:  # teardown must go on
                log.warning("removing container %s failed: %s", started.name, exc)


def _factory(config: pytest.Config, pool: SessionPool) -> ContainerFactory:
    if _STARTED not in config.stash:
        config.stash[_STARTED] = ContainerFactory(pool, config.getoption("container_runtime"))
    return config.stash[_STARTED]


def pytest_unconfigure(config: pytest.Config) -> None:
    """Last resort: containers whose fixture teardown never ran (an interrupted setup)."""
    if _STARTED in config.stash:
        config.stash[_STARTED].remove_all()


@pytest.fixture(scope="session")
def make_container(pytestconfig: pytest.Config,
                   make_session: SessionPool) -> Iterator[ContainerFactory]:
    """Session-scoped factory: ``make_container(image, runtime=None, args=())`` starts a
    container and returns an open session to it; all are removed at the end of the session."""
    factory = _factory(pytestconfig, make_session)
    yield factory
    factory.remove_all()


@pytest.fixture(scope="module")
def container(request: pytest.FixtureRequest,
              make_container: ContainerFactory) -> Iterator[TargetSession]:
    """A container for this module, from ``@pytest.mark.container(image=...)`` on the module
    (``pytestmark``) or the ``psdirect_container_image`` ini key; removed when the module ends."""
    mark = request.node.get_closest_marker("container")
    kwargs = dict(mark.kwargs) if mark else {}
    image = kwargs.get("image") or (mark.args[0] if mark and mark.args else None) \
        or request.config.getini("psdirect_container_image")
    if not image:
        pytest.fail("the container fixture needs an image: mark the module with "
                    "pytestmark = pytest.mark.container(image='...') or set "
                    "psdirect_container_image in the ini file", pytrace=False)
    try:
        started = make_container.start(
            str(image), runtime=kwargs.get("runtime"), args=tuple(kwargs.get("args", ())),
            command=tuple(kwargs.get("command", ("sleep", "infinity"))))
    except PSDirectError as exc:
        fail_with(exc)
    try:
        try:
            session = make_container.session(started)
        except PSDirectError as exc:
            fail_with(exc)
        yield session
    finally:
        make_container.remove(started)
