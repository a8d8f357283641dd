"""Drives the command agent over any pair of byte pipes (a local process, an SSH channel...).

One reader thread turns the agent's stdout into frames; another keeps the last of its stderr for
error messages. :meth:`AgentRunner.run` sends one request and waits for its frames, bounded
everywhere: the agent enforces the timeout and the output cap itself, and if it does not report
within a short grace the controller asks it to kill the command, then gives up on it.

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

from ..errors import CommandTimeout, OutputTooLarge, PSDirectError, SessionBroken
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
#: Seconds between keepalive pings (the agent ends itself after 45 s without a word).
PING_EVERY = 10.0
OutputCallback = Callable[[int, bytes], None]


class AgentUnavailable(PSDirectError):
    """The agent could not start (no python3 on the target...); ``detail`` is its stderr."""


class AgentGone(SessionBroken):
    """The agent had ended before a request reached it: nothing ran, the request can be retried."""


class AgentRunner:
    """One agent on one target; one command at a time."""

    def __init__(self, pipes: ShellPipes, *, label: str) -> None:
        self._pipes = pipes
        self._label = label
        self._frames: queue.Queue[Frame | None] = queue.Queue()
        self._stderr = bytearray()
        self._lock = threading.Lock()  # one command at a time
        self._write_lock = threading.Lock()  # requests and pings never interleave
        self._stopped = threading.Event()
        self._next = 0
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
                    else:
                        self._frames.put(frame)
        except (ProtocolError, OSError, EOFError) as exc:
            log.warning("agent on %s: %s", self._label, exc)
        except Exception as exc:  # a closed channel may raise anything; it ends the stream
            log.debug("agent on %s: reader ended: %r", self._label, exc)
        self.alive = False
        self._frames.put(None)

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
        frame = self._next_frame(time.monotonic() + timeout)
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

    def _next_frame(self, deadline: float) -> Frame | None:
        """The next frame, or None at EOF (marks the agent dead) or at the deadline."""
        try:
            frame = self._frames.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return None
        if frame is None:
            self.alive = False
        return frame

    def run(self, spec: RunSpec, *, limit: int,
            stream: OutputCallback | None = None) -> Completed:
        """Run a checked command through the agent; output is collected (and passed to
        ``stream``)."""
        with self._lock:
            if not self.alive:
                raise AgentGone("the command agent has ended", target=self._label)
            self._next += 1
            cid = self._next
            request = encode_run(cid, spec, limit)
            try:
                self._write(request)
            except (OSError, EOFError) as exc:
                self.close()
                raise AgentGone(f"cannot send to the command agent: {exc}",
                                target=self._label) from None
            return self._collect(cid, spec.cmd, spec.timeout, limit, stream)

    def _collect(self, cid: int, cmd: str, timeout: float, limit: int,
                 stream: OutputCallback | None) -> Completed:
        # BytesIO grows in place and getvalue() hands over its buffer without a copy, so
        # 200 MB of output costs about 200 MB (a bytearray would need a second copy for bytes)
        out, err = io.BytesIO(), io.BytesIO()
        deadline = time.monotonic() + timeout + GRACE
        asked_kill = False
        while True:
            frame = self._next_frame(deadline)
            if frame is None:
                if not self.alive:
                    raise SessionBroken(
                        "the command agent ended while running a command"
                        + (f": {self._stderr_text()}" if self._stderr else ""),
                        target=self._label, hint="it was killed on the target or the connection "
                        "dropped; the next command starts a new agent")
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
            if frame.cid != cid:
                continue  # a late frame of an earlier command
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
