"""The command agent: a small program that runs on the target for the life of a session.

It is sent as source over the session's channel and started with the target's ``python3``
(3.6 or newer; standard library only), so nothing is installed on the target. It reads requests
(one JSON object per line) on stdin and writes frames on stdout (see ``agentproto``). Commands
run concurrently, each under the request id it came with (``target.start()`` jobs share the
agent with ``target.run()``); a ``kill`` request names the id to end.

Each command runs exactly as ``ssh host 'cmd'`` runs it: ``$SHELL -c cmd`` in the account's login
shell, in a new session and process group of its own (``$$`` is that shell; ``kill -9 $$`` ends
that command only), stdin from ``/dev/null``, stdout and stderr on fresh pipes of its own. As
with ssh, the result is complete when the shell has exited and its pipes have closed (a background
job that keeps them open keeps the command running, up to its timeout); the pipes are the
command's own, so nothing written to them ever reaches another command. Timeouts and the output cap
are enforced here too, so they hold even when the controller stalls. When stdin ends (session
closed, controller killed, connection dropped) every process group the agent started is killed
before it exits: nothing it started outlives the session (except what detached with ``setsid``).

Run it locally to try it::

    $ python3 pytest_psdirect/transports/agent.py
    {"op": "run", "id": 1, "cmd": "echo hi", "timeout": 5, "max": 1000}
"""
# This file runs on the target's python3 (>= 3.6): no f-string '=' specifiers, no walrus,
# no builtin generics in annotations, no third-party imports.

import binascii
import errno
import fcntl
import json
import os
import select
import signal
import sys
import time
from typing import Dict, List, Mapping, Optional, Set

CHUNK = 65536
#: set in every command's environment to this session's random mark (see Agent.shutdown)
SESSION_VAR = "PSDIRECT_SESSION"
#: the shell commands run in, when the controller sets it (taken out of the commands' environment)
SHELL_VAR = "PSDIRECT_SHELL"
#: The controller writes at least every 10 s (a ping when idle). Silence this long means it is
#: gone without a word (a network partition: no EOF ever comes), so the agent ends everything.
SILENCE_LIMIT = 45.0
OUT_HIGH_WATER = 1 << 20  # stop reading the command while this much waits for the controller
#: Python ignores these; an ignored signal stays ignored across exec, so reset them for commands
#: (``yes | head`` must end by SIGPIPE as it does under ssh).
_DEFAULT_SIGNALS = [getattr(signal, name) for name in ("SIGPIPE", "SIGXFSZ", "SIGCHLD", "SIGTERM",
                                                       "SIGHUP", "SIGINT") if hasattr(signal, name)]


class Command:
    """One running command (several may run at once: each a request id of its own)."""

    def __init__(self, cid: int, pid: int, fds: Dict[int, int], deadline: float,
                 limit: int) -> None:
        self.cid = cid
        self.pid = pid
        self.fds = fds  # pipe read end -> stream number (1 stdout, 2 stderr)
        self.deadline = deadline
        self.limit = limit
        self.count = 0
        self.status: Optional[int] = None
        self.why = "exit"


class Agent:
    """The request loop: commands run concurrently (keyed by request id), frames out, every
    started group tracked."""

    def __init__(self) -> None:
        # PSDIRECT_SHELL: the controller's choice (containers: /bin/sh, as `podman exec ID sh -c`)
        self.shell = os.environ.pop(SHELL_VAR, "") or os.environ.get("SHELL") or _passwd_shell()
        # every command's environment carries this mark, so that at the end even a process
        # that left our process groups (setsid, a double fork) is found through /proc and ended
        self.mark = "%s=%s" % (SESSION_VAR, binascii.hexlify(os.urandom(8)).decode())
        name, _, value = self.mark.partition("=")
        os.environ[name] = value
        self.inbuf = b""
        self.heard = time.monotonic()
        self.outbuf = bytearray()
        self.cmds = {}  # type: Dict[int, Command]  # request id -> running command
        self.groups: Set[int] = set()
        self.wake_r, wake_w = os.pipe()
        for fd in (self.wake_r, wake_w):
            _nonblocking(fd)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        _nonblocking(1)

    # -- frames ---------------------------------------------------------------------------
    def send(self, kind: str, cid: int, payload: bytes) -> None:
        self.outbuf += ("%s %d %d\n" % (kind, cid, len(payload))).encode("ascii") + payload

    def send_json(self, kind: str, cid: int, obj: object) -> None:
        self.send(kind, cid, json.dumps(obj).encode("utf-8"))

    def flush(self) -> None:
        while self.outbuf:
            try:
                n = os.write(1, self.outbuf)
            except OSError as exc:
                if exc.errno == errno.EAGAIN:
                    return
                self.shutdown()  # the controller is gone
            del self.outbuf[:n]

    # -- requests ---------------------------------------------------------------------------
    def on_request(self, req: Dict[str, object]) -> None:
        op = req.get("op")
        cid = int(req.get("id", 0))  # type: ignore[call-overload]
        if op == "run":
            if cid in self.cmds:
                self.send_json("X", cid, {"rc": -1, "why": "busy", "msg": "id %d is running" % cid})
                return
            self.start(cid, req)
        elif op == "kill" and cid in self.cmds:
            self.kill(self.cmds[cid], "killed")
        elif op == "ping":
            pass  # heard: that is all a ping is for

    def start(self, cid: int, req: Dict[str, object]) -> None:
        extra = req.get("env")
        env = os.environ  # type: Mapping[str, str]
        if extra:
            env = dict(os.environ, **extra)  # type: ignore[arg-type]
        cwd = req.get("cwd")
        argv = [os.path.basename(self.shell), "-c", str(req["cmd"])]
        out_r, out_w = os.pipe()  # os.pipe() fds are close-on-exec: only 0, 1, 2 reach the shell
        err_r, err_w = os.pipe()
        try:
            pid = _spawn(self.shell, argv, env, out_w, err_w, None if cwd is None else str(cwd))
        except OSError as exc:
            for fd in (out_r, out_w, err_r, err_w):
                os.close(fd)
            msg = "cannot start %s: %s" % (exc.filename or self.shell, exc.strerror)
            self.send_json("X", cid, {"rc": 127, "why": "spawn", "msg": msg})
            return
        os.close(out_w)
        os.close(err_w)
        for fd in (out_r, err_r):
            _nonblocking(fd)
        self.groups.add(pid)
        timeout = float(req.get("timeout", 300))  # type: ignore[arg-type]
        self.cmds[cid] = Command(cid, pid, {out_r: 1, err_r: 2}, time.monotonic() + timeout,
                                 int(req.get("max", 1 << 28)))  # type: ignore[call-overload]
        self.send("S", cid, b"%d" % pid)

    def kill(self, cmd: Command, why: str) -> None:
        if cmd.why == "exit":
            cmd.why = why
        _killpg(cmd.pid)

    # -- the command's output and end -------------------------------------------------------
    def pump(self, cmd: Command, fd: int) -> int:
        """Forward one chunk of ``fd``; return its size (0 at EOF or when nothing is there)."""
        try:
            data = os.read(fd, CHUNK)
        except OSError as exc:
            if exc.errno == errno.EAGAIN:
                return 0
            data = b""
        if not data:
            os.close(fd)
            del cmd.fds[fd]
            return 0
        cmd.count += len(data)
        if cmd.count > cmd.limit:
            self.kill(cmd, "limit")
            return 0
        self.send(str(cmd.fds[fd]), cmd.cid, data)
        return len(data)

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            for cmd in self.cmds.values():
                if pid == cmd.pid:
                    cmd.status = status

    def finish(self, cmd: Command) -> None:
        """The shell exited and its pipes closed, or it was killed: forward what the pipes still
        hold (after a kill, a detached process may keep them open: let go), report."""
        assert cmd.status is not None
        for fd in list(cmd.fds):
            while fd in cmd.fds and cmd.why != "limit" and self.pump(cmd, fd) > 0:
                pass
            if fd in cmd.fds:  # no more for now: a background job may hold it; let go
                os.close(fd)
                del cmd.fds[fd]
        status = cmd.status
        # killed by a signal: rc -1, as OpenSSH servers report it to testinfra's SSH backends
        rc = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1
        signum = 0 if os.WIFEXITED(status) else os.WTERMSIG(status)
        del self.cmds[cmd.cid]
        self.groups = set(g for g in self.groups if _group_alive(g))
        self.send_json("X", cmd.cid, {"rc": rc, "signal": signum, "why": cmd.why,
                                      "count": cmd.count, "groups": sorted(self.groups)})

    # -- the loop ---------------------------------------------------------------------------
    def loop(self) -> None:
        self.send_json("H", 0, {"pid": os.getpid(), "shell": self.shell,
                                "python": "%d.%d" % sys.version_info[:2]})
        while True:
            readers = [0, self.wake_r]
            wait = 1.0
            now = time.monotonic()
            for cmd in self.cmds.values():
                if cmd.why == "exit":
                    if len(self.outbuf) < OUT_HIGH_WATER:
                        readers += list(cmd.fds)
                    wait = max(0.0, min(wait, cmd.deadline - now))
            writers = [1] if self.outbuf else []
            if now - self.heard > SILENCE_LIMIT:
                self.shutdown()
            try:
                readable, writable, _ = select.select(readers, writers, [], wait)
            except InterruptedError:
                continue
            if writable:
                self.flush()
            if self.wake_r in readable:
                _drain(self.wake_r)
            self.reap()
            for cmd in list(self.cmds.values()):
                for fd in readable:
                    if fd in cmd.fds and cmd.why == "exit":
                        self.pump(cmd, fd)
                if cmd.why == "exit" and time.monotonic() >= cmd.deadline:
                    self.kill(cmd, "timeout")
                if cmd.status is not None and (not cmd.fds or cmd.why != "exit"):
                    self.finish(cmd)
            if 0 in readable:
                self.read_requests()

    def read_requests(self) -> None:
        try:
            data = os.read(0, CHUNK)
        except OSError:
            data = b""
        if not data:
            self.shutdown()
        self.heard = time.monotonic()
        self.inbuf += data
        while b"\n" in self.inbuf:
            line, _, self.inbuf = self.inbuf.partition(b"\n")
            if line.strip():
                self.on_request(json.loads(line.decode("utf-8")))

    def _on_signal(self, signum: int, frame: object) -> None:
        self.shutdown()

    def shutdown(self) -> None:
        """Kill every process group this agent started and every process that carries this
        session's mark in its environment (it detached itself), then exit."""
        for group in self.groups:
            _killpg(group)
        _kill_marked(self.mark.encode())
        os._exit(0)


def _spawn(shell: str, argv: List[str], env: Mapping[str, str], out_w: int, err_w: int,
           cwd: Optional[str]) -> int:
    """Start the shell in a new session with the given pipes; return its PID (= its group)."""
    if cwd is None and hasattr(os, "posix_spawn"):  # Python >= 3.8: vfork-fast
        actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                   (os.POSIX_SPAWN_DUP2, out_w, 1), (os.POSIX_SPAWN_DUP2, err_w, 2)]
        return os.posix_spawn(shell, argv, env, file_actions=actions, setsid=True,
                              setsigdef=_DEFAULT_SIGNALS)
    pid = os.fork()
    if pid == 0:  # the child: exits through execve or _exit, never returns
        try:
            os.setsid()
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            for sig in _DEFAULT_SIGNALS:
                signal.signal(sig, signal.SIG_DFL)
            if cwd is not None:
                os.chdir(cwd)
            os.execve(shell, argv, env)
        except OSError as exc:
            os.write(2, ("%s: %s\n" % (exc.filename or shell, exc.strerror)).encode())
        finally:
            os._exit(127 if cwd is None else 1)
    return pid


def _kill_marked(mark: bytes) -> None:
    """SIGKILL the processes of this user whose environment holds ``mark`` (Linux /proc only)."""
    me = os.getpid()
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return
    for pid in pids:
        if pid == me:
            continue
        try:
            with open("/proc/%d/environ" % pid, "rb") as f:
                found = mark in f.read().split(b"\0")
        except OSError:  # gone, or another user's
            continue
        if found:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def _passwd_shell() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_shell or "/bin/sh"


def _nonblocking(fd: int) -> None:
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, CHUNK):
            pass
    except OSError:
        pass


def _killpg(group: int) -> None:
    try:
        os.killpg(group, signal.SIGKILL)
    except OSError:
        pass


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except OSError:
        return False
    return True


def main() -> None:
    Agent().loop()


if __name__ == "__main__":
    main()
