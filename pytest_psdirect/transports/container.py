"""``container://ID``: a running Linux container, through the ``podman`` or ``docker`` CLI.

Commands go to the command agent (``agent.py``) over ONE long-lived ``RUNTIME exec -i ID python3
-c ...`` process, so a command costs a write and a read instead of a new exec (~100 ms each);
a container without ``python3`` gets one ``RUNTIME exec ID /bin/sh -c CMD`` per command instead.
Either way a command runs as ``/bin/sh -c CMD``, exactly as ``podman exec ID sh -c CMD`` and
testinfra's podman/docker backends run it (not the user's login shell: containers rarely have
one worth the name), with the container's environment, stdin from ``/dev/null``.
Every process is started from an argv list (never a shell string on this machine). Files move
through exec too: ``cat`` into a hidden partial name renamed into place (the ``put`` is atomic,
and runs as the exec user, as SFTP does), and ``cat`` out of the container for ``get``.

Why the CLI and not the Engine API (docker SDK): no extra dependency, the same code drives
podman and docker, and ``docker`` pointed at podman's socket (``DOCKER_HOST``) speaks the Engine
API for us; the CLI also brings the runtime's own error messages and configuration.

URL: ``container://[USER@]ID[?runtime=podman|docker&timeout=S]``. Without ``runtime`` podman is
asked first, then docker. A ``?host=`` option means a Windows container on a Hyper-V/container
host instead (:class:`~.psdirect.WindowsContainerTransport`): :meth:`ContainerTransport.select`.

Example::

    >>> from pytest_psdirect.targets import parse_target
    >>> try:
    ...     check_container_target(parse_target("container://web?runtime=lxc"))
    ... except TargetSpecError as exc:
    ...     print(exc)
    container://web?runtime=lxc: ?runtime='lxc' is not one of podman, docker
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import subprocess
from collections.abc import Callable, Iterator
from typing import ClassVar

from ..errors import (
    CommandTimeout,
    ConnectFailed,
    ContainerNotFound,
    ContainerNotRunning,
    FileTransferError,
    TargetSpecError,
    TransportUnavailable,
)
from ..targets import Target
from .agent import SHELL_VAR
from .agentproto import bootstrap_code
from .base import ShellTransport, Transport
from .executor import ShellPipes
from .files import atomic_local_file, partial_name
from .local import ProcessPipes
from .shellproto import Completed

log = logging.getLogger(__name__)
RUNTIMES = ("podman", "docker")
OPTIONS = ("runtime", "timeout")
#: exit statuses of ``podman/docker exec`` itself (not of the command): 125 the runtime failed
_EXEC_FAILED = 125
# put: write stdin to a partial name, then rename it into place; values arrive as "$1" "$2".
# On failure stdin is read to its end before the exit: podman 4.3 loses the stderr of an
# ``exec -i`` process that exits while its stdin is still being copied (1 time in 3 here).
_PUT = '{ cat > "$1" && mv -f "$1" "$2"; } || { rc=$?; cat > /dev/null; rm -f "$1"; exit $rc; }'


def check_container_target(target: Target) -> None:
    """Refuse unknown options and a bad ``?runtime=`` of a Linux container target (and
    ``?runtime=`` on a Windows one, which ``?host=`` marks)."""
    if target.option("host") is not None:
        if target.option("runtime") is not None:
            raise TargetSpecError("?runtime= (a Linux container) and ?host= (a Windows container "
                                  "on that host) exclude each other", target=target.url,
                                  hint="drop one of them")
        return
    unknown = sorted({key for key, _ in target.options} - set(OPTIONS))
    if unknown:
        hint = ("run_as_administrator is for Windows containers: name their host with "
                "--hyperv-host / ?host=" if "run_as_administrator" in unknown
                else f"container:// takes {', '.join(OPTIONS)} (or host= for a Windows container)")
        raise TargetSpecError(f"unknown option(s) {unknown} for a Linux container",
                              target=target.url, hint=hint)
    runtime = target.option("runtime")
    if runtime is not None and runtime not in RUNTIMES:
        raise TargetSpecError(f"?runtime={runtime!r} is not one of {', '.join(RUNTIMES)}",
                              target=target.url)


def _cli(runtime: str, *args: str, timeout: float) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([runtime, *args], stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=timeout, check=False)


class ContainerTransport(ShellTransport):
    """A running docker/podman container on this machine (or on the daemon ``DOCKER_HOST``
    names, for docker)."""

    scheme: ClassVar[str] = "container"
    _runtime: str = ""
    _closed: bool = False

    @classmethod
    def select(cls, target: Target) -> type[Transport]:
        """``?host=`` names a Windows container host: PowerShell Direct's route serves it."""
        if target.option("host") is not None:
            from .psdirect import WindowsContainerTransport

            return WindowsContainerTransport
        return cls

    @property
    def container(self) -> str:
        return self.target.host

    @property
    def runtime(self) -> str:
        """The runtime serving this container (known once :meth:`open` has run)."""
        return self._runtime

    def open(self) -> None:
        __tracebackhide__ = True
        check_container_target(self.target)
        self._runtime = self._find_runtime()
        self._ensure_runner()

    def _find_runtime(self) -> str:
        """``?runtime=`` or the first of podman, docker that knows a running container ``ID``
        (auto-detection passes over a runtime that cannot answer, e.g. no docker daemon)."""
        wanted = self.target.option("runtime")
        candidates = [wanted] if wanted else [r for r in RUNTIMES if shutil.which(r)]
        if not candidates or (wanted and not shutil.which(wanted)):
            raise TransportUnavailable(
                f"no container runtime here: {wanted} is not on PATH" if wanted
                else "no container runtime here: neither podman nor docker is on PATH",
                target=self.target.url, hint="install podman or docker (or fix PATH)")
        missing, broken = [], []
        for runtime in candidates:
            try:
                state = self._state(runtime)
            except ConnectFailed as exc:
                if wanted:
                    raise
                broken.append(f"{runtime}: {exc.message}")
                continue
            if state == "running":
                return runtime
            if state is not None:
                raise ContainerNotRunning(
                    f"container {self.container} on {runtime} is {state}, not running",
                    target=self.target.url, hint=f"start it: `{runtime} start {self.container}`")
            missing.append(runtime)
        where = " or ".join(missing) or "no runtime that answered"
        raise ContainerNotFound(
            f"no such container {self.container} on {where}"
            + (f" ({'; '.join(broken)})" if broken else ""), target=self.target.url,
            hint=" / ".join(f"`{r} ps -a`" for r in missing or candidates)
            + " lists the containers there")

    def _state(self, runtime: str) -> str | None:
        """The container's status on ``runtime`` (``running``, ``exited``...), None if unknown."""
        try:
            proc = _cli(runtime, "container", "inspect", "--format", "{{.State.Status}}",
                        self.container, timeout=self.settings.connect_timeout)
        except subprocess.TimeoutExpired:
            raise ConnectFailed(f"{runtime} did not answer within "
                                f"{self.settings.connect_timeout:g}s", target=self.target.url,
                                hint=f"is the {runtime} service healthy? try `{runtime} ps`") \
                from None
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").lower()
            if "no such" in err or "not found" in err or "no container" in err:
                return None
            raise ConnectFailed(f"`{runtime} container inspect` failed: "
                                f"{proc.stderr.decode(errors='replace').strip()[-300:]}",
                                target=self.target.url, hint=f"check `{runtime} info`")
        return proc.stdout.decode().strip().splitlines()[-1].lower()

    @property
    def alive(self) -> bool:
        if self._closed or not self._runtime:
            return False
        if self._fallback is not None or (self._runner is not None and self._runner.alive):
            return True
        return self._state(self._runtime) == "running"  # only when the agent is gone

    def _exec_argv(self, *command: str, interactive: bool = False,
                   env: tuple[str, ...] = ()) -> list[str]:
        argv = [self._runtime, "exec"] + (["-i"] if interactive else [])
        for pair in env:
            argv += ["--env", pair]
        if self.target.user:
            argv += ["--user", self.target.user]
        return [*argv, self.container, *command]

    def _popen(self, *command: str, env: tuple[str, ...] = ()) -> ProcessPipes:
        proc = subprocess.Popen(self._exec_argv(*command, interactive=True, env=env),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
        return ProcessPipes(proc)

    def _spawn_agent(self, source: bytes) -> ShellPipes:
        pipes = self._popen("python3", "-c", bootstrap_code(len(source)),
                            env=(f"{SHELL_VAR}=/bin/sh",))
        with contextlib.suppress(OSError):  # it ended already (no python3): the runner says why
            pipes.write(source)
        return pipes

    def _spawn_shell(self) -> tuple[ShellPipes, Callable[[int], None]]:
        # exec starts the shell as a session leader: its PID is its process group
        return self._popen("/bin/sh"), lambda pgid: self._kill_groups([pgid])

    def _kill_groups(self, groups: list[int]) -> None:
        argv = self._exec_argv("/bin/sh", "-c", 'kill -s KILL -- "$@"', "sh",
                               *(f"-{int(g)}" for g in groups))
        subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, check=False,
                       timeout=self.settings.connect_timeout)

    def _exec_once(self, cmd: str, timeout: float) -> Completed:
        try:
            proc = subprocess.run(self._exec_argv("sh", "-c", cmd), capture_output=True,
                                  stdin=subprocess.DEVNULL, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise CommandTimeout(f"command timed out after {timeout:g}s", target=self.target.url,
                                 command=cmd, timeout=timeout, stdout=exc.stdout or b"",
                                 stderr=exc.stderr or b"",
                                 hint="without python3 in the container the command itself may "
                                      "still run there; raise timeout=") from None
        if proc.returncode == _EXEC_FAILED and proc.stderr.startswith(b"Error"):
            raise ConnectFailed(f"{self._runtime} exec failed: "
                                f"{proc.stderr.decode(errors='replace').strip()[-300:]}",
                                target=self.target.url, hint=f"is the container still running? "
                                f"`{self._runtime} ps -a`")
        return Completed(0, proc.returncode, proc.stdout, proc.stderr)

    # -- files ------------------------------------------------------------------------------
    def put(self, local: str, remote: str) -> None:
        what = f"{local} -> {remote}"
        with self._copying(what), open(local, "rb") as src:
            proc = subprocess.run(
                self._exec_argv("/bin/sh", "-c", _PUT, "sh", partial_name(remote), remote,
                                interactive=True),
                stdin=src, capture_output=True, timeout=self.settings.command_timeout,
                check=False)
        self._check_copy(proc, what)

    def get(self, remote: str, local: str) -> None:
        what = f"{remote} -> {local}"
        with self._copying(what), atomic_local_file(local) as part, open(part, "wb") as dst:
            proc = subprocess.run(self._exec_argv("cat", "--", remote), stdout=dst,
                                  stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                  timeout=self.settings.command_timeout, check=False)
            self._check_copy(proc, what)

    @contextlib.contextmanager
    def _copying(self, what: str) -> Iterator[None]:
        """Turn a local file error or a copy past ``command_timeout`` into FileTransferError."""
        try:
            yield
        except OSError as exc:
            raise FileTransferError(f"copy {what} failed: {exc.strerror or exc}",
                                    target=self.target.url, hint="check the local path") from None
        except subprocess.TimeoutExpired:
            raise FileTransferError(f"copy {what} took longer than "
                                    f"{self.settings.command_timeout:g}s", target=self.target.url,
                                    hint="raise --psdirect-command-timeout for big files") \
                from None

    def _check_copy(self, proc: subprocess.CompletedProcess[bytes], what: str) -> None:
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip()[-300:]
            raise FileTransferError(f"copy {what} failed: {err or f'exit {proc.returncode}'}",
                                    target=self.target.url,
                                    hint="check the path in the container and its permissions")

    def close(self) -> None:
        self._closed = True
        super().close()
