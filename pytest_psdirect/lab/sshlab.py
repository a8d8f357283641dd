"""A lab of real OpenSSH hosts, each ``sshd`` in its own network namespace on one bridge.

``ip netns exec NS`` bind-mounts ``/etc/netns/NS/*`` over ``/etc``, so every host has its own
``/etc/ssh`` (config and host keys): host 1 is hardened, the others are deliberately weak
(``PermitRootLogin yes``, ``X11Forwarding yes``) so a baseline has something to catch.
Needs root, iproute2 and openssh-server. Every PID, namespace and link the lab makes is recorded
in ``lab.json`` and removed by :meth:`SSHLab.down` (never by process name).

Decisions: ``up`` refuses a lab still running in the same folder (its keys and password stay
valid; the error names ``psdirect lab down --dir X``) and cleans up a stale record; it refuses a
user that already exists (it would otherwise change a real account's password); the subnet is
picked under ``/run/psdirect-lab.lock`` so concurrent labs never share one. ``down`` ends every
process in the lab's namespaces, then removes namespaces, links, ``/etc/netns/NS``, the user and
the files it wrote, and checks each; ``/run/sshd`` (sshd's own privsep folder) is left in place.

Example (as root)::

    lab = SSHLab(Path(".lab"), hosts=3)
    lab.up()          # writes .lab/inventory.toml, credentials.toml (0600), known_hosts, id_ed25519
    ...
    lab.down()
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import LabError
from .procs import alive, end_processes, netns_pids, uid_pids
from .subnet import check_subnet, free_subnet, lab_lock

log = logging.getLogger(__name__)
SSHD = "/usr/sbin/sshd"
LAB_USER = "psdtest"
_HARDENED = "PermitRootLogin no\nX11Forwarding no\nMaxAuthTries 3\n"
_WEAK = "PermitRootLogin yes\nX11Forwarding yes\nMaxAuthTries 6\n"


@dataclass
class LabHost:
    """One sshd host: its namespace, address and the PID of its sshd."""

    name: str
    netns: str
    address: str
    hardened: bool
    user: str = LAB_USER
    pid: int = 0

    @property
    def url(self) -> str:
        return f"ssh://{self.user}@{self.address}"


@dataclass
class LabState:
    """Everything :meth:`SSHLab.down` must undo; saved to ``lab.json``."""

    prefix: str
    subnet: str
    bridge: str
    hosts: list[LabHost] = field(default_factory=list)
    created_user: bool = False
    user: str = LAB_USER
    created_key: bool = False
    created_dir: bool = False


def missing_facilities() -> str | None:
    """Why the lab cannot run here, or None. Used by tests to skip only when truly absent."""
    if os.geteuid() != 0:
        return "the SSH lab needs root (network namespaces, sshd)"
    for tool in ("ip", "ssh-keygen", "useradd", "chpasswd"):
        if shutil.which(tool) is None:
            return f"the SSH lab needs {tool!r} (apt-get install iproute2 openssh-server passwd)"
    if not os.path.exists(SSHD):
        return f"the SSH lab needs {SSHD} (apt-get install openssh-server)"
    probe = f"psdprobe{secrets.token_hex(2)}"
    if _ip("netns", "add", probe, check=False).returncode != 0:
        return "this machine refuses 'ip netns add' (no network namespaces)"
    _ip("netns", "del", probe, check=False)
    return None


def _run(*argv: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False, timeout=60)
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed: {proc.stderr.strip()}",
                       hint="run as root on a machine with iproute2 and openssh-server")
    return proc


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return _run("ip", *args, check=check)


class SSHLab:
    """Builds and removes the lab. ``subnet`` is the first three octets of a /24."""

    def __init__(self, workdir: Path, hosts: int = 3, subnet: str | None = None,
                 user: str = LAB_USER, sshd_extra: str = "") -> None:
        self.workdir = workdir.resolve()
        self.sshd_extra = sshd_extra  # more sshd_config lines (e.g. a Subsystem), every host
        self.user = user
        self.count = hosts
        self.subnet = subnet  # None: the first free 10.N.0, picked under the lab lock by up()
        self.state_file = self.workdir / "lab.json"
        self.password = ""
        self.state: LabState | None = None

    # ---- files the lab hands to users -------------------------------------------------------
    @property
    def key_file(self) -> Path:
        return self.workdir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.workdir / "known_hosts"

    @property
    def credentials_file(self) -> Path:
        return self.workdir / "credentials.toml"

    @property
    def inventory_file(self) -> Path:
        return self.workdir / "inventory.toml"

    def up(self, ready_timeout: float = 15.0) -> list[LabHost]:
        """Build the lab; on any failure, remove what was built and raise LabError.

        A lab still running in the same folder is refused (its host keys and password stay
        valid); a stale record whose namespaces and sshd are gone is cleaned up first.
        """
        why = missing_facilities()
        if why:
            raise LabError(why, hint="run as root on Debian with iproute2 and openssh-server")
        if self.state_file.exists():
            self._clear_stale_record()
        created_dir = not self.workdir.exists()
        self.workdir.mkdir(parents=True, exist_ok=True)
        prefix = f"psd{secrets.token_hex(2)}"
        self.state = LabState(prefix=prefix, subnet="", bridge=f"{prefix}br", user=self.user,
                              created_dir=created_dir)
        try:
            with lab_lock():  # pick + bridge address as one step: a concurrent lab sees it
                if self.subnet is None:
                    self.subnet = free_subnet()
                else:
                    check_subnet(self.subnet)
                self.state.subnet = self.subnet
                self._prepare_user()
                self._network()
            for host in self.state.hosts:
                self._start_sshd(host)
            self._save()
            for host in self.state.hosts:
                _wait_port(host.address, 22, ready_timeout)
            self._write_client_files()
        except BaseException:
            self.down(keep_logs=True)
            raise
        return self.state.hosts

    def running(self) -> bool:
        """True when any recorded namespace or sshd of this lab still exists."""
        if self.state is None:
            return False
        names = set(_ip("netns", "list", check=False).stdout.split())
        return any(h.netns in names or alive(h.pid) for h in self.state.hosts)

    def _clear_stale_record(self) -> None:
        old = SSHLab.load(self.workdir)
        assert old.state is not None
        if old.running():
            raise LabError(
                f"a lab is already running in {self.workdir} (subnet {old.state.subnet}.0/24, "
                f"user {old.state.user}, {len(old.state.hosts)} hosts)",
                hint=f"use it as it is ({old.inventory_file}), or take it down first: "
                     f"psdirect lab down --dir {self.workdir}")
        log.info("lab record in %s is stale (nothing running); removing its leftovers", self.workdir)
        old.down()

    def _prepare_user(self) -> None:
        assert self.state is not None
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        user = self.user
        if _run("id", user, check=False).returncode == 0:
            raise LabError(f"user {user!r} already exists on this machine (another lab, a leftover "
                           "or a real account); the lab will not change its password",
                           hint="pass --user with a new name, or 'psdirect lab down --dir DIR' "
                                "the lab that created it")
        _run("useradd", "--create-home", "--shell", "/bin/sh", user)
        self.state.created_user = True
        self.password = secrets.token_urlsafe(18)
        _run("chpasswd", stdin=f"{user}:{self.password}\n")  # via stdin, never argv
        if not self.key_file.exists():
            self.state.created_key = True
            _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "psdirect-lab",
                 "-f", str(self.key_file))
        ssh_dir = Path(f"~{user}").expanduser() / ".ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        authorized = ssh_dir / "authorized_keys"
        with authorized.open("a") as fh:  # append: another lab's key stays valid
            fh.write(self.key_file.with_suffix(".pub").read_text())
        for path in (ssh_dir, authorized):
            shutil.chown(path, user, user)
        os.chmod(authorized, 0o600)

    def _network(self) -> None:
        assert self.state is not None
        st = self.state
        _ip("link", "add", st.bridge, "type", "bridge")
        _ip("addr", "add", f"{st.subnet}.1/24", "dev", st.bridge)
        _ip("link", "set", st.bridge, "up")
        for i in range(1, self.count + 1):
            host = LabHost(name=f"lab{i}", netns=f"{st.prefix}-h{i}",
                           address=f"{st.subnet}.{10 + i}", hardened=i == 1, user=self.user)
            st.hosts.append(host)
            self._save()
            _ip("netns", "add", host.netns)
            _ip("link", "add", f"{st.prefix}v{i}", "type", "veth", "peer", "name", "eth0",
                "netns", host.netns)
            _ip("link", "set", f"{st.prefix}v{i}", "master", st.bridge, "up")
            _ip("-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "eth0")
            _ip("-n", host.netns, "link", "set", "eth0", "up")
            _ip("-n", host.netns, "link", "set", "lo", "up")

    def _start_sshd(self, host: LabHost) -> None:
        etc_ssh = Path("/etc/netns") / host.netns / "ssh"
        etc_ssh.mkdir(parents=True, exist_ok=True)
        key = etc_ssh / "ssh_host_ed25519_key"
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key))
        (etc_ssh / "sshd_config").write_text(
            f"# psdirect lab host {host.name}\nListenAddress {host.address}\n"
            "HostKey /etc/ssh/ssh_host_ed25519_key\nPasswordAuthentication yes\n"
            "KbdInteractiveAuthentication no\nUsePAM yes\nPrintMotd no\nMaxStartups 100\n"
            "MaxSessions 100\nSubsystem sftp /usr/lib/openssh/sftp-server\n"
            + self.sshd_extra + (_HARDENED if host.hardened else _WEAK))
        if os.path.exists("/etc/ssh/moduli"):
            shutil.copyfile("/etc/ssh/moduli", etc_ssh / "moduli")
        with open(self.workdir / f"{host.name}.log", "wb") as logfile:
            proc = subprocess.Popen(["ip", "netns", "exec", host.netns, SSHD, "-D", "-e"],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=logfile, start_new_session=True)
        host.pid = proc.pid  # ip netns exec execs sshd: same PID
        self._save()

    def _write_client_files(self) -> None:
        assert self.state is not None
        lines = []
        for host in self.state.hosts:
            pub = (Path("/etc/netns") / host.netns / "ssh/ssh_host_ed25519_key.pub").read_text()
            lines.append(f"{host.address} {' '.join(pub.split()[:2])}\n")
        self.known_hosts.write_text("".join(lines))
        fd = os.open(self.credentials_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f'[lab]\nusername = "{self.user}"\npassword = "{self.password}"\n')
        targets = "".join(
            f'\n[targets.{h.name}]\nurl = "{h.url}"\ncredential = "file:credentials.toml#lab"\n'
            f'tags = ["lab", "{"hardened" if h.hardened else "weak"}"]\n'
            for h in self.state.hosts)
        self.inventory_file.write_text(
            f'# written by psdirect lab up\n[defaults]\nssh_key = "{self.key_file}"\n'
            f'known_hosts = "{self.known_hosts}"\n{targets}')

    def _save(self) -> None:
        assert self.state is not None
        self.state_file.write_text(json.dumps(asdict(self.state), indent=1))

    @classmethod
    def load(cls, workdir: Path) -> SSHLab:
        """The lab recorded in ``workdir/lab.json`` (to take it down from another process)."""
        lab = cls(workdir)
        raw = json.loads(lab.state_file.read_text())
        hosts = [LabHost(**h) for h in raw.pop("hosts")]
        lab.state = LabState(**raw, hosts=hosts)
        lab.count, lab.subnet, lab.user = len(hosts), lab.state.subnet, lab.state.user
        return lab

    def down(self, keep_logs: bool = False) -> None:
        """End every process of the lab, then remove its namespaces, links, user and files.

        Order matters: the recorded sshd PIDs, then every process left in each namespace
        (session processes, users' commands and background jobs, found with ``ip netns pids``),
        then the namespaces and links, then the user (``userdel`` refuses while it has
        processes). Every step is verified; what could not be undone is raised as LabError and
        ``lab.json`` is kept so that ``lab down`` can be run again.
        """
        st = self.state
        if st is None:
            return
        problems: list[str] = []
        for host in st.hosts:
            _stop_pid(host.pid)
        for host in st.hosts:
            if left := end_processes(netns_pids(host.netns)):
                problems.append(f"PIDs {left} in namespace {host.netns} survived SIGKILL")
        for host in st.hosts:
            _ip("netns", "del", host.netns, check=False)
            shutil.rmtree(Path("/etc/netns") / host.netns, ignore_errors=True)
        for i in range(1, len(st.hosts) + 1):
            _ip("link", "del", f"{st.prefix}v{i}", check=False)
        _ip("link", "del", st.bridge, check=False)
        problems += self._leftover_network()
        if st.created_user:
            problems += _remove_user(st.user)
        if problems:
            raise LabError("lab down could not undo everything: " + "; ".join(problems),
                           hint=f"fix the above, then run 'psdirect lab down --dir {self.workdir}' again")
        self._remove_files(keep_logs)
        self.state = None

    def _leftover_network(self) -> list[str]:
        assert self.state is not None
        st = self.state
        names = set(_ip("netns", "list", check=False).stdout.split())
        left = [f"namespace {h.netns}" for h in st.hosts if h.netns in names]
        links = _ip("-o", "link", "show", check=False).stdout
        left += [f"link {name}" for name in (st.bridge, *(f"{st.prefix}v{i}"
                                             for i in range(1, len(st.hosts) + 1)))
                 if f" {name}:" in links or f" {name}@" in links]
        return [f"{what} still exists" for what in left]

    def _remove_files(self, keep_logs: bool) -> None:
        assert self.state is not None
        files = [self.credentials_file, self.inventory_file, self.known_hosts, self.state_file]
        if self.state.created_key:
            files += [self.key_file, self.key_file.with_suffix(".pub")]
        if not keep_logs:
            files += [self.workdir / f"{h.name}.log" for h in self.state.hosts]
        for path in files:
            path.unlink(missing_ok=True)
        if self.state.created_dir:
            with contextlib.suppress(OSError):
                self.workdir.rmdir()  # only when empty: never a user's own files


def _remove_user(user: str) -> list[str]:
    """Delete the lab's user; its processes in the lab namespaces were ended before."""
    uid = _uid(user)
    if uid is None:
        return []
    deadline = time.monotonic() + 5  # killed processes linger as zombies until init reaps them
    while (left := uid_pids(uid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    if others := [pid for pid in left if alive(pid)]:  # outside the lab's namespaces: not ours
        return [f"user {user} still has processes outside the lab (PIDs {others}): end them, "
                f"then 'userdel --remove {user}'"]
    if left:
        return [f"user {user} still has zombie processes {left} that their parent did not reap"]
    proc = _run("userdel", "--remove", user, check=False)
    if _uid(user) is not None:
        return [f"userdel {user} failed: {proc.stderr.strip()}"]
    return []


def _uid(user: str) -> int | None:
    proc = _run("id", "-u", user, check=False)
    return int(proc.stdout) if proc.returncode == 0 else None


def _stop_pid(pid: int) -> None:
    if pid > 0 and (left := end_processes([pid], grace=3.0)):
        log.warning("sshd PID %s survived SIGKILL", left)


def _wait_port(address: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((address, port), timeout=1) as sock:
                if sock.recv(4).startswith(b"SSH-"):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise LabError(f"sshd on {address}:{port} did not answer within {timeout:g}s",
                           hint="see the host's log in the lab folder")
        time.sleep(0.05)
