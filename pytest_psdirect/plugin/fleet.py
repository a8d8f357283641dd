"""Sessions of a fleet: opened ahead in parallel, closed when their tests are done, throttled.

In each process that runs tests (a plain run, or each xdist worker):

* **open ahead**: when a test starts, the sessions of the targets this process will run next
  (the rest of the run without xdist; the worker's queue under ``-n``) open in background
  threads, as many as the throttle has free slots, so a run's wall time is not the sum of its
  session opens. Only targets of tests that will run are opened (deselected ones never are);
  ``vm://``/``vmid://``/``qemu://`` targets open with their first test, after the VM's state is checked.
* **preflight**: that open is the target's preflight; a target that cannot be opened is dead
  for the run and all its tests error at once with the same one-line reason (the pool keeps the
  failure), each report carrying ``psdirect_unreachable`` (also a JUnit property).
* **done means closed**: after a target's last test in this process its session closes and its
  throttle slot is free for the next target.
* **throttle**: every open (and reopen) holds a slot of :mod:`.throttle`; the test in front waits
  for one (bounded by the command timeout), first closing sessions this process opened ahead
  for later targets.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from ..errors import PSDirectError, SessionLimitReached
from ..sessions import Lease
from ..targets import LIFECYCLE_SCHEMES, Target
from ..throttle import ThrottleTimeout, endpoint_key
from .state import POOL, SETTINGS
from .throttle import THROTTLE
from .xdist_sched import BY_TARGET

log = logging.getLogger(__name__)
FLEET = pytest.StashKey["Fleet"]()
UNREACHABLE = "psdirect_unreachable"
_OPENERS = 8  # threads opening sessions ahead (the throttle's free slots bound them too)


def target_of_item(item: pytest.Item) -> Target | None:
    callspec = getattr(item, "callspec", None)
    spec = callspec.params.get("_psdirect_target") if callspec else None
    return spec if isinstance(spec, Target) else None


def _xdist_queue(config: pytest.Config) -> Any:
    """The xdist worker's queue of test indices (its WorkerInteractor's ``torun``), or None."""
    for plugin in config.pluginmanager.get_plugins():
        torun = getattr(plugin, "torun", None)
        if torun is not None and hasattr(torun, "lock"):
            return torun
    return None


def queued_indices(torun: Any) -> list[int] | None:
    """Indices of the tests queued in this xdist worker, or None when not knowable (the queue
    is not a public API of xdist: anything unexpected gives None, and the plugin then only
    looks at the next test)."""
    if torun is None:
        return None
    try:
        with torun.lock() as queued:
            return [i for i in queued if isinstance(i, int)]
    except Exception:
        return None


class Fleet:
    """Per-process state: which targets come next, which sessions were opened ahead."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        workerinput = getattr(config, "workerinput", None)
        self.worker = workerinput is not None
        self.workers = int(workerinput.get("workercount", 1)) if workerinput else 1
        distributed = getattr(config.option, "dist", "no") != "no"
        # close a target's session after its last test only when that is knowable: a plain run,
        # or xdist with the plugin's scheduler (a target's tests arrive together, once)
        self.release_when_done = not distributed or config.stash.get(BY_TARGET, False)
        self._items: list[pytest.Item] = []
        self._index: dict[str, int] = {}  # nodeid -> position in the run (plain runs)
        self._last: dict[str, int] = {}  # url -> position of its last test (plain runs)
        self._order: list[Target] = []  # targets by their first test (plain runs)
        self._skip = 0  # targets at the head of _order whose tests are all done
        self._queue: Any = None
        self._current: str | None = None
        self._ahead: dict[str, Target] = {}  # opened (or opening) ahead, not used yet
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._local = threading.local()

    # -- which targets come next ---------------------------------------------------------------
    def collected(self, items: list[pytest.Item]) -> None:
        self._items, self._index, self._last, self._order, self._skip = items, {}, {}, [], 0
        for n, item in enumerate(items):
            self._index[item.nodeid] = n
            target = target_of_item(item)
            if target is not None:
                if target.url not in self._last:
                    self._order.append(target)
                self._last[target.url] = n
        if self.worker:
            self._queue = _xdist_queue(self.config)

    def upcoming(self, item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[Target]:
        """Targets of the tests after ``item`` in this process, in run order.

        A plain run walks its targets by first test, skipping finished ones (no rescan of the
        run per test: nothing grows with hosts x tests); a worker reads its queue.
        """
        if not self.worker:
            here = self._index.get(item.nodeid, len(self._items))
            while self._skip < len(self._order) and self._last[self._order[self._skip].url] <= here:
                self._skip += 1
            yield from (t for t in self._order[self._skip:] if self._last[t.url] > here)
            return
        after = [self._items[i] for i in queued_indices(self._queue) or () if i < len(self._items)]
        for later in [nextitem, *after] if nextitem is not None else after:
            target = target_of_item(later)
            if target is not None:
                yield target

    def done_with(self, item: pytest.Item, nextitem: pytest.Item | None, url: str) -> bool:
        """True when no test after ``item`` in this process uses ``url``."""
        if not self.release_when_done:
            return False
        if not self.worker:
            return self._index.get(item.nodeid, -1) >= self._last.get(url, -1)
        if queued_indices(self._queue) is None and nextitem is not None:
            return False  # cannot see the queue: keep it (the throttle can still evict it)
        return all(t.url != url for t in self.upcoming(item, nextitem))

    # -- the gate: one throttle slot per open session --------------------------------------------
    def gate(self, target: Target, username: str | None) -> Lease:
        throttle = self.config.stash[THROTTLE]
        key = endpoint_key(target, username)
        if getattr(self._local, "ahead", False):  # opening ahead never waits, never evicts,
            # and leaves a slot for each other worker's test in front (it would wait for one)
            free = throttle.limit - throttle.in_use()
            lease = throttle.try_acquire(key) if free > self.workers - 1 else None
            if lease is None:
                raise SessionLimitReached("no free slot to open ahead", target=target.url)
            return lease
        settings = self.config.stash[SETTINGS]
        bound = max(settings.connect_timeout, settings.command_timeout)
        try:
            return throttle.acquire(key, bound, make_room=lambda: self.make_room(target.url))
        except ThrottleTimeout:
            raise SessionLimitReached(
                f"no session slot freed up within {bound:g}s ({throttle.limit} sessions at "
                "once in this run" + (f", {throttle.per_endpoint} per endpoint"
                                      if throttle.per_endpoint else "") + ")",
                target=target.url) from None

    def make_room(self, wanted: str) -> bool:
        """Close one session this process opened ahead (the one needed last) to free a slot."""
        pool = self.config.stash.get(POOL, None)
        with self._lock:
            candidates = [url for url in self._ahead if url != wanted]
        if pool is None:
            return False
        for victim in reversed(candidates):
            if pool.release(victim):  # False while still opening: evicted at a later call
                with self._lock:
                    self._ahead.pop(victim, None)
                log.debug("throttle: closed %s (opened ahead) to open %s", victim, wanted)
                return True
        return False

    # -- opening ahead --------------------------------------------------------------------------
    def open_ahead(self, targets: Iterator[Target]) -> None:
        from .fixtures import pool_of  # fixtures builds the pool with this module's gate

        throttle = self.config.stash[THROTTLE]
        pool = pool_of(self.config)
        wanted: list[Target] = []
        seen: set[str] = set()
        for target in targets:
            if target.url in seen or target.url == self._current:
                continue
            seen.add(target.url)
            if len(seen) > throttle.limit:
                break
            if target.scheme in LIFECYCLE_SCHEMES:
                continue  # lifecycle.py checks (or starts) the VM before its session opens
            if not pool.is_open(target) and pool.failure(target) is None:
                wanted.append(target)
        with self._lock:
            wanted = [t for t in wanted if t.url not in self._ahead]
            self._ahead.update((t.url, t) for t in wanted)
        if not wanted:
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(min(_OPENERS, throttle.limit),
                                                thread_name_prefix="psdirect-open")
        for target in wanted:
            self._executor.submit(self._open_one, target)

    def _open_one(self, target: Target) -> None:
        pool = self.config.stash[POOL]
        self._local.ahead = True
        try:
            pool.prepare(target)
        except SessionLimitReached:
            with self._lock:  # no slot now: the test itself opens it, waiting for a slot
                self._ahead.pop(target.url, None)
        except PSDirectError as exc:  # kept by the pool: every test of the target gets it
            log.debug("%s: preflight failed: %s", target.url, exc)
            with self._lock:
                self._ahead.pop(target.url, None)
        except Exception:
            log.exception("%s: opening ahead failed", target.url)
            with self._lock:
                self._ahead.pop(target.url, None)
        finally:
            self._local.ahead = False

    def starting(self, item: pytest.Item, nextitem: pytest.Item | None) -> None:
        target = target_of_item(item)
        if target is not None:
            with self._lock:
                self._ahead.pop(target.url, None)
            self._current = target.url
        self.open_ahead(self.upcoming(item, nextitem))

    def finished(self, item: pytest.Item, nextitem: pytest.Item | None) -> None:
        target = target_of_item(item)
        pool = self.config.stash.get(POOL, None)
        if target is not None and pool is not None and self.done_with(item, nextitem, target.url):
            pool.release(target.url)
            self._current = None

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)


def pytest_configure(config: pytest.Config) -> None:
    config.stash[FLEET] = Fleet(config)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    config.stash[FLEET].collected(items)  # after every plugin's deselection


def pytest_collection_finish(session: pytest.Session) -> None:
    session.config.stash[FLEET].collected(session.items)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    item.config.stash[FLEET].starting(item, nextitem)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item,
                            nextitem: pytest.Item | None) -> Generator[None, None, None]:
    try:
        return (yield)
    finally:
        item.config.stash[FLEET].finished(item, nextitem)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A test of a dead target carries why (``psdirect_unreachable``) for the controller."""
    report = yield
    target = target_of_item(item)
    pool = item.config.stash.get(POOL, None)
    if report.when == "setup" and report.failed and target is not None and pool is not None:
        error = pool.failure(target)
        if error is not None:
            reason = (UNREACHABLE, f"{type(error).__name__}: {error}")
            item.user_properties.append(reason)  # JUnit writes the teardown report's
            report.user_properties.append(reason)
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    session.config.stash[FLEET].shutdown()
