"""Drives the command agent over any pair of byte pipes (a local process, an SSH channel...).

One reader thread turns the agent's stdout into frames and hands each to the queue of the
request it belongs to (its id), so several commands run at once on one agent: ``run`` from the
test thread, ``target.start()`` jobs from theirs. Another thread keeps the last of the agent's
stderr for error messages. :meth:`AgentRunner.run` (= :meth:`send` + :meth:`collect`) is bounded
everywhere: the agent enforces the timeout and the output cap itself, and if it does not report
within a short grace the controller asks it to kill the command, then gives up on it.
:meth:`cancel` asks the agent to kill one running command (its whole process group).

Example::

    runner = AgentRunner(pipes, label="ssh://admin@web01")
    runner.start(timeout=10)                       # waits for the agent's hello
    done = runner.run(run_spec("uname -r", timeout=5), limit=1 << 20)
    done.rc, done.stdout
"""

from __future__ import annotations

import io
import logging
import queue
import threading
import time
from collections.abc import Callable

from ..errors import CommandCancelled, CommandTimeout, OutputTooLarge, PSDirectError, SessionBroken
from .agentproto import (
    Frame,
    FrameParser,
    ProtocolError,
    RunSpec,
    encode_run,
    kill_request,
    ping_request,
)
from .executor import ShellPipes
from .shellproto import Completed

log = logging.getLogger(__name__)
#: How long past a command's timeout the controller waits for the agent's own report, and then
#: again for the answer to its kill request, before it gives up on the agent.
GRACE = 0.25
#: How long a cancelled command's collector waits for the agent to confirm the kill before it
#: reports the cancel anyway (a stalled target: what is left ends with the session).
CANCEL_GRACE = 2.0
#: Seconds between keepalive pings (the agent ends itself after 45 s without a word).
PING_EVERY = 10.0
OutputCallback = Callable[[int, bytes], None]


class AgentUnavailable(PSDirectError):
    """The agent could not start (no python3 on the target...); ``detail`` is its stderr."""


class AgentGone(SessionBroken):
    """The agent had ended before a request reached it: nothing ran, the request can be retried."""


class AgentRunner:
    """One agent on one target; any number of commands at once, each with its own id."""

    def __init__(self, pipes: ShellPipes, *, label: str) -> None:
        self._pipes = pipes
        self._label = label
        #: request id -> the queue its frames go to (0: the hello)
        self._routes: dict[int, queue.Queue[Frame | None]] = {0: queue.Queue()}
        self._route_lock = threading.Lock()  # routes change and EOF is announced atomically
        self._stderr = bytearray()
        self._write_lock = threading.Lock()  # requests and pings never interleave
        self._stopped = threading.Event()
        self._next = 0
        self._cancelled: set[int] = set()  # ids whose kill came from cancel(), not a timeout
        #: process groups this agent started that may still have members (commands, background
        #: jobs): what the transport kills itself if the agent dies without doing so
        self.groups: set[int] = set()
        self.alive = True
        self.info: dict[str, object] = {}
        threading.Thread(target=self._read_frames, daemon=True,
                         name=f"psdirect-agent-{label}").start()
        threading.Thread(target=self._keepalive, daemon=True,
                         name=f"psdirect-agent-ping-{label}").start()
        threading.Thread(target=self._read_stderr, daemon=True,
                         name=f"psdirect-agent-err-{label}").start()

    def _read_frames(self) -> None:
        parser = FrameParser()
        try:
            while data := self._pipes.read_stdout():
                for frame in parser.feed(data):
                    if frame.kind == "S":  # noted here: waking the caller for it costs time
                        self.groups.add(int(frame.payload))
                        continue
                    route = self._routes.get(frame.cid)
                    if route is not None:  # else a late frame of a command given up on
                        route.put(frame)
        except (ProtocolError, OSError, EOFError) as exc:
            log.warning("agent on %s: %s", self._label, exc)
        except Exception as exc:  # a closed channel may raise anything; it ends the stream
            log.debug("agent on %s: reader ended: %r", self._label, exc)
        with self._route_lock:
            self.alive = False
            for route in self._routes.values():
                route.put(None)

    def _keepalive(self) -> None:
        while not self._stopped.wait(PING_EVERY):
            try:
                self._write(ping_request())
            except (OSError, EOFError):
                return
            except Exception as exc:  # a closed channel may raise anything
                log.debug("agent on %s: ping failed: %r", self._label, exc)
                return

    def _write(self, data: bytes) -> None:
        with self._write_lock:
            self._pipes.write(data)

    def _read_stderr(self) -> None:
        try:
            while data := self._pipes.read_stderr():
                self._stderr += data
                del self._stderr[:-4096]
        except Exception as exc:  # as above: end of stream
            log.debug("agent on %s: stderr ended: %r", self._label, exc)

    def _stderr_text(self) -> str:
        return self._stderr.decode("utf-8", "replace").strip()[-500:]

    def start(self, timeout: float) -> dict[str, object]:
        """Wait for the agent's hello; raise :class:`AgentUnavailable` if it ends first."""
        frame = self._next_frame(self._routes[0], time.monotonic() + timeout)
        if frame is None or frame.kind != "H":
            self.close()
            if frame is None and not self.alive:
                time.sleep(0.05)  # let the stderr reader catch the shell's last words
                raise AgentUnavailable(f"the command agent did not start: {self._stderr_text()}",
                                       target=self._label)
            raise SessionBroken(f"the command agent did not answer within {timeout:g}s",
                                target=self._label, hint="the target is slow or unreachable; "
                                "raise --psdirect-connect-timeout if it is only slow")
        self.info = frame.json()
        log.debug("agent on %s ready: %s", self._label, self.info)
        return self.info

    @staticmethod
    def _next_frame(route: queue.Queue[Frame | None], deadline: float) -> Frame | None:
        """The next frame of one request, or None at EOF or at the deadline."""
        try:
            frame = route.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return None
        return frame

    def run(self, spec: RunSpec, *, limit: int,
            stream: OutputCallback | None = None) -> Completed:
        """Run a checked command through the agent; output is collected (and passed to
        ``stream``)."""
        return self.collect(self.send(spec, limit), spec, limit, stream)

    def send(self, spec: RunSpec, limit: int) -> int:
        """Start a checked command; return its id (for :meth:`collect` and :meth:`cancel`)."""
        with self._route_lock:
            if not self.alive:
                raise AgentGone("the command agent has ended", target=self._label)
            self._next += 1
            cid = self._next
            self._routes[cid] = queue.Queue()
        try:
            self._write(encode_run(cid, spec, limit))
        except (OSError, EOFError) as exc:
            self._routes.pop(cid, None)
            self.close()
            raise AgentGone(f"cannot send to the command agent: {exc}",
                            target=self._label) from None
        return cid

    def collect(self, cid: int, spec: RunSpec, limit: int,
                stream: OutputCallback | None = None) -> Completed:
        """Wait for command ``cid`` (from :meth:`send`) to end; bounded by its timeout."""
        try:
            return self._collect(cid, spec.cmd, spec.timeout, limit, stream)
        finally:
            self._routes.pop(cid, None)
            self._cancelled.discard(cid)

    def cancel(self, cid: int) -> None:
        """Ask the agent to kill command ``cid``; :meth:`collect` then raises
        :class:`~pytest_psdirect.errors.CommandCancelled`."""
        route = self._routes.get(cid)
        if route is not None:
            self._cancelled.add(cid)
            self._send_kill(cid)
            route.put(Frame("C", cid, b""))  # wakes the collector: the kill's answer is due

    def _collect(self, cid: int, cmd: str, timeout: float, limit: int,
                 stream: OutputCallback | None) -> Completed:
        # BytesIO grows in place and getvalue() hands over its buffer without a copy, so
        # 200 MB of output costs about 200 MB (a bytearray would need a second copy for bytes)
        out, err = io.BytesIO(), io.BytesIO()
        deadline = time.monotonic() + timeout + GRACE
        asked_kill = False
        route = self._routes[cid]
        while True:
            frame = self._next_frame(route, deadline)
            if frame is None:
                if not self.alive:
                    raise SessionBroken(
                        "the command agent ended while running a command"
                        + (f": {self._stderr_text()}" if self._stderr else ""),
                        target=self._label, hint="it was killed on the target or the connection "
                        "dropped; the next command starts a new agent")
                if cid in self._cancelled:
                    raise CommandCancelled(
                        f"command was cancelled; the target did not confirm the kill within "
                        f"{CANCEL_GRACE:g}s", target=self._label, command=cmd,
                        stdout=out.getvalue(), stderr=err.getvalue(),
                        hint="what it left ends when the session closes")
                if asked_kill:  # the transport drops the connection (see _on_unresponsive)
                    self.alive = False
                    self._stopped.set()
                    raise CommandTimeout(
                        f"command timed out after {timeout:g}s and the target stopped answering",
                        target=self._label, command=cmd, timeout=timeout, stdout=out.getvalue(),
                        stderr=err.getvalue(), hint="the host or the network may be down; the "
                        "session is reopened once on the next command")
                self._send_kill(cid)
                asked_kill, deadline = True, time.monotonic() + GRACE
                continue
            if frame.kind == "C":  # cancel() was called: wait for the agent's X briefly
                deadline = min(deadline, time.monotonic() + CANCEL_GRACE)
                continue
            if frame.kind in ("1", "2"):
                (out if frame.kind == "1" else err).write(frame.payload)
                if stream is not None:
                    stream(int(frame.kind), frame.payload)
            elif frame.kind == "X":
                info = frame.json()
                live = info.get("groups")
                if isinstance(live, list):
                    self.groups = {g for g in live if isinstance(g, int)}
                return self._finish(info, cid, cmd, timeout, limit, out, err)

    def _send_kill(self, cid: int) -> None:
        try:
            self._write(kill_request(cid))
        except (OSError, EOFError):
            self.alive = False

    def _finish(self, info: dict[str, object], cid: int, cmd: str, timeout: float, limit: int,
                out: io.BytesIO, err: io.BytesIO) -> Completed:
        why = info.get("why")
        if why == "killed" and cid in self._cancelled:
            raise CommandCancelled("command was cancelled and its processes killed",
                                   target=self._label, command=cmd, stdout=out.getvalue(),
                                   stderr=err.getvalue())
        if why in ("timeout", "killed"):
            raise CommandTimeout(f"command timed out after {timeout:g}s and was killed",
                                 target=self._label, command=cmd, timeout=timeout,
                                 stdout=out.getvalue(), stderr=err.getvalue(),
                                 hint="raise timeout= (or --psdirect-command-timeout)")
        if why == "limit":
            raise OutputTooLarge(f"command printed more than {limit} bytes and was killed",
                                 target=self._label, command=cmd, limit=limit,
                                 stdout=out.getvalue()[:65536], stderr=err.getvalue()[:65536])
        if why == "busy":
            raise SessionBroken("the command agent was still busy", target=self._label)
        if why == "spawn":
            err.write(f"{info.get('msg')}\n".encode())
        rc = info.get("rc")
        return Completed(cid, rc if isinstance(rc, int) else -1, out.getvalue(), err.getvalue())

    def close(self) -> None:
        """End the agent: closing its stdin makes it kill everything it started, then exit."""
        self.alive = False
        self._stopped.set()
        self._pipes.close()
