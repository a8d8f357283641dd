"""The session pool: one :class:`~pytest_psdirect.sessions.TargetSession` per canonical URL.

It opens sessions lazily (several targets at once from threads, each under its own lock), takes a
throttle slot for each (:mod:`pytest_psdirect.throttle`), remembers a failed open so the other
tests of an unreachable target fail at once, and closes everything at teardown.

Example::

    pool = SessionPool(TransportRegistry(), Settings(), credential_for=lambda t, required: None)
    web = pool.get(parse_target("local://"))
    pool.is_open(web.target), pool.open_urls()     # (True, ['local://'])
    pool.close_all()
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from .credentials.secret import Credential
from .errors import PSDirectError, SessionLimitReached
from .sessions import Lease, TargetSession
from .settings import Settings
from .targets import Target
from .transports import Transport, TransportRegistry

log = logging.getLogger(__name__)
CredentialLookup = Callable[[Target, bool], Credential | None]


#: Waits for a slot for a session to ``target`` (its credential's user name, if any) or raises.
Gate = Callable[[Target, str | None], Lease]


class SessionPool:
    """Opens, caches and closes :class:`TargetSession` objects, one per canonical URL."""

    def __init__(self, registry: TransportRegistry, settings: Settings,
                 credential_for: CredentialLookup,
                 on_opened: Callable[[TargetSession], None] | None = None,
                 on_closed: Callable[[Target], None] | None = None,
                 gate: Gate | None = None) -> None:
        self._registry = registry
        self._settings = settings
        self._credential_for = credential_for
        self._on_opened = on_opened
        self._on_closed = on_closed
        self._gate = gate
        self._sessions: dict[str, TargetSession] = {}
        self._failures: dict[str, PSDirectError] = {}
        self._announced: set[str] = set()  # sessions whose on_opened has run
        self._lock = threading.Lock()  # guards the dicts; opens run under a per-target lock
        self._opening: dict[str, threading.Lock] = {}

    def get(self, target: Target) -> TargetSession:
        """The open session for ``target``; opened on first use. A failed open is re-raised."""
        __tracebackhide__ = True
        session = self.prepare(target)
        with self._lock:
            announce = target.url not in self._announced
            self._announced.add(target.url)
        if announce and self._on_opened:
            self._on_opened(session)
        return session

    def prepare(self, target: Target) -> TargetSession:
        """Open ``target``'s session without announcing it (``on_opened`` runs at the first
        :meth:`get`), so several threads can open sessions at once; a failure is kept for
        :meth:`get` and :meth:`peek` to re-raise."""
        __tracebackhide__ = True
        with self._lock:
            opening = self._opening.setdefault(target.url, threading.Lock())
        with opening:
            with self._lock:
                if target.url in self._sessions:
                    return self._sessions[target.url]
                if target.url in self._failures:
                    raise self._failures[target.url]
            try:
                session = self._open(target)
            except SessionLimitReached:
                raise  # not the target's fault: the next test tries again
            except PSDirectError as exc:
                with self._lock:
                    self._failures[target.url] = exc
                raise
            with self._lock:
                self._sessions[target.url] = session
            return session

    def failure(self, target: Target) -> PSDirectError | None:
        """Why ``target`` could not be opened, if it could not."""
        with self._lock:
            return self._failures.get(target.url)

    def is_open(self, target: Target) -> bool:
        with self._lock:
            return target.url in self._sessions

    def open_urls(self) -> list[str]:
        """URLs of the sessions open now."""
        with self._lock:
            return list(self._sessions)

    def release(self, url: str) -> bool:
        """Close the session of ``url`` (its tests are done); a later :meth:`get` opens anew."""
        with self._lock:
            session = self._sessions.pop(url, None)
            self._announced.discard(url)
        if session is None:
            return False
        self._close(session)
        return True

    def _open(self, target: Target) -> TargetSession:
        __tracebackhide__ = True
        cls = self._registry.get(target.scheme).select(target)
        credential = self._credential_for(target, cls.credential_required_for(target))
        username = credential.username if credential else None
        gate = self._gate

        def relet() -> Lease:
            assert gate is not None
            return gate(target, username)

        def connect() -> Transport:
            __tracebackhide__ = True
            transport = cls(target, credential, self._settings)
            try:
                transport.open()
            except BaseException:
                transport.close()
                raise
            return transport

        log.debug("opening session to %s", target)
        lease = relet() if gate is not None else None
        try:
            transport = connect()
        except BaseException:
            if lease is not None:
                lease.release()
            raise
        return TargetSession(target, transport, connect, self._settings, self._on_opened,
                             lease, relet if gate is not None else None)

    def peek(self, target: Target) -> TargetSession | None:
        """The session of ``target`` if one is open; raises the cached error of a failed open."""
        with self._lock:
            if target.url in self._failures:
                raise self._failures[target.url]
            return self._sessions.get(target.url)

    def close_all(self) -> None:
        """Close every session; errors are logged, never raised (teardown must finish)."""
        with self._lock:
            sessions, self._sessions = self._sessions, {}
            self._announced.clear()
        for session in sessions.values():
            self._close(session)

    def _close(self, session: TargetSession) -> None:
        try:
            session.close()
        except Exception as exc:
            log.warning("closing %s failed: %s", session.url, exc)
        if self._on_closed:
            self._on_closed(session.spec)
