"""``psdirect shell``: an interactive session on one target (the ``Enter-PSSession`` analogue).

POSIX targets get a shell prompt, PowerShell targets a PowerShell one; both run on an open
:class:`~pytest_psdirect.sessions.TargetSession` (the CLI's own, or a failing test's for
``--psdirect-shell-on-fail``). Lines are edited locally (``readline``, history in
``$XDG_STATE_HOME/psdirect/history``, default ``~/.local/state``); ``exit``, ``logout`` or
Ctrl-D leave. Ctrl-C ends the running remote command (its whole process group), not the shell.

POSIX: each line is a background job on the session's agent (``target.start``), so Ctrl-C is
``job.cancel()``; the directory and the environment carry over between lines (``repl.state``),
a non-zero exit status shows in the next prompt::

    [lab1] ~ $ cd /tmp
    [lab1] /tmp $ false
    [lab1] /tmp [1] $ exit

PowerShell: each line runs with ``run_ps`` on the session's RunspacePool, whose state (variables,
location) persists as in ``Enter-PSSession``; the prompt is ``[NAME]: PS> ``. The engines cannot
stop one pipeline on demand, so Ctrl-C there closes the session (it reopens on the next line,
with a fresh runspace) and says so.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from ..errors import CommandAborted, CommandCancelled, PSDirectError
from ..sessions import TargetSession
from .state import ShellState

#: how long one line may run in the interactive shell unless the caller says otherwise
INTERACTIVE_TIMEOUT = 86400.0
_LEAVE = ("exit", "logout")


def history_file() -> Path:
    """Where the line history is kept (``$XDG_STATE_HOME/psdirect/history``)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                           "state")
    return Path(base) / "psdirect" / "history"


@contextlib.contextmanager
def _line_editing() -> Iterator[None]:
    """readline with a history file, when this Python has it (it does on Linux/macOS)."""
    try:
        import readline
    except ImportError:  # pragma: no cover - Windows without pyreadline
        yield
        return
    path = history_file()
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        readline.read_history_file(path)
    readline.set_history_length(2000)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            readline.write_history_file(path)


def _read(prompt: str) -> str | None:
    """One line; None at Ctrl-D. Ctrl-C at the prompt gives an empty line, as in bash."""
    try:
        return input(prompt)
    except EOFError:
        print()
        return None
    except KeyboardInterrupt:
        print()  # the terminal echoed ^C itself
        return ""


def _leaving(line: str) -> bool:
    words = line.split()
    return bool(words) and words[0] in _LEAVE and len(words) <= 2


class PosixConsole:
    """The shell prompt of a POSIX target: lines as agent jobs, cwd and environment carried."""

    def __init__(self, session: TargetSession, *, timeout: float = INTERACTIVE_TIMEOUT,
                 out: TextIO | None = None) -> None:
        self.session = session
        self.timeout = timeout
        self.state = ShellState()
        self.rc = 0
        self._out = out or sys.stdout
        self._lock = threading.Lock()

    def prompt(self) -> str:
        home = self.state.env.get("HOME")
        cwd = self.state.cwd or "?"
        if home and (cwd == home or cwd.startswith(home.rstrip("/") + "/")):
            cwd = "~" + cwd[len(home.rstrip("/")):]
        status = f" [{self.rc}]" if self.rc else ""
        return f"[{self.session.name}] {cwd}{status} $ "

    def _write(self, stream_no: int, data: bytes) -> None:
        if not data:
            return
        with self._lock:
            self._out.flush()
            target = sys.stdout.buffer if stream_no == 1 else sys.stderr.buffer
            target.write(data)
            target.flush()

    def execute(self, line: str) -> int:
        """Run one line; return its exit status (130 after Ctrl-C, as a shell reports it)."""
        split = self.state.splitter()

        def stream(stream_no: int, chunk: bytes) -> None:
            self._write(stream_no, split.feed(chunk) if stream_no == 1 else chunk)

        job = self.session.start(self.state.wrap(line), timeout=self.timeout,
                                 env=self.state.extra_env(), cwd=self.state.cwd, stream=stream)
        try:
            while not job.wait(0.2):
                pass
        except KeyboardInterrupt:
            job.cancel()  # waits, bounded, for the job to end
        try:
            # after a cancel the job has ended, or never will in time: do not wait again
            result = job.result(timeout=0 if job.cancelled else None)
        except (CommandCancelled, TimeoutError):
            self._write(1, split.rest())
            print(file=sys.stderr)  # the terminal echoed ^C itself
            return 130
        except CommandAborted as exc:
            self._write(1, split.rest())
            print(f"psdirect: {exc.message}", file=sys.stderr)
            return 124
        self._write(1, split.rest())
        self.state.update(split.finish())
        return result.rc

    def loop(self) -> int:
        """Read, run, repeat until ``exit`` or Ctrl-D; return the last exit status."""
        self.execute("true")  # the starting directory and environment
        with _line_editing():
            while True:
                line = _read(self.prompt())
                if line is None:
                    return self.rc
                if _leaving(line):
                    return self.rc
                if not line.strip():
                    continue
                try:
                    self.rc = self.execute(line)
                except PSDirectError as exc:
                    print(f"psdirect: {exc}", file=sys.stderr)
                    self.rc = 255
                except ValueError as exc:  # a NUL or lone surrogate in the line
                    print(f"psdirect: {exc}", file=sys.stderr)
                    self.rc = 2


class PowerShellConsole:
    """The PowerShell prompt: lines run on the session's RunspacePool, its state kept."""

    def __init__(self, session: TargetSession, *, timeout: float = INTERACTIVE_TIMEOUT) -> None:
        self.session = session
        self.timeout = timeout
        self.failed = False

    def prompt(self) -> str:
        return f"[{self.session.name}]: PS{' [error]' if self.failed else ''}> "

    def execute(self, line: str) -> bool:
        """Run one line; print output and error records; return True when it had errors."""
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["result"] = self.session.run_ps(line, timeout=self.timeout)
            except BaseException as exc:  # shown below; the thread must not raise
                box["error"] = exc

        worker = threading.Thread(target=work, daemon=True, name="psdirect-ps-line")
        worker.start()
        try:
            while worker.is_alive():
                worker.join(0.2)
        except KeyboardInterrupt:
            print("^C: the pipeline cannot be stopped alone; closing the session (the next line "
                  "opens a new one, without this one's variables)", file=sys.stderr)
            self.session.close()
            return True
        if "error" in box:
            raise box["error"]
        result = box["result"]
        for item in result.output:
            print(_format(item))
        for record in result.errors:
            print(str(record), file=sys.stderr)
        for warning in result.warning:
            print(f"WARNING: {warning}", file=sys.stderr)
        return bool(result.had_errors)

    def loop(self) -> int:
        with _line_editing():
            while True:
                line = _read(self.prompt())
                if line is None or _leaving(line):
                    return 1 if self.failed else 0
                if not line.strip():
                    continue
                try:
                    self.failed = self.execute(line)
                except PSDirectError as exc:
                    print(f"psdirect: {exc}", file=sys.stderr)
                    self.failed = True


def _format(item: Any) -> str:
    if isinstance(item, dict):
        width = max((len(str(k)) for k in item), default=0)
        return "\n".join(f"{k!s:<{width}} : {v}" for k, v in item.items()) + "\n"
    return str(item)


def interact(session: TargetSession, *, timeout: float | None = None) -> int:
    """Run the right console for ``session`` until the user leaves; return the last status."""
    wait = timeout or INTERACTIVE_TIMEOUT
    if session.powershell:
        print(f"PowerShell on {session.url}; exit or Ctrl-D to leave", file=sys.stderr)
        return PowerShellConsole(session, timeout=wait).loop()
    print(f"shell on {session.url}; exit or Ctrl-D to leave, Ctrl-C ends the running command",
          file=sys.stderr)
    return PosixConsole(session, timeout=wait).loop()
