"""A lab of real OpenSSH hosts, each ``sshd`` in its own network namespace on one bridge.

``ip netns exec NS`` bind-mounts ``/etc/netns/NS/*`` over ``/etc``, so every host has its own
``/etc/ssh`` (config and host keys): host 1 is hardened, the others are deliberately weak
(``PermitRootLogin yes``, ``X11Forwarding yes``) so a baseline has something to catch.
Needs root, iproute2 and openssh-server. Every PID, namespace and link the lab makes is recorded
in ``lab.json`` and removed by :meth:`SSHLab.down` (never by process name).

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
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import PSDirectError

log = logging.getLogger(__name__)
SSHD = "/usr/sbin/sshd"
LAB_USER = "psdtest"
_HARDENED = "PermitRootLogin no\nX11Forwarding no\nMaxAuthTries 3\n"
_WEAK = "PermitRootLogin yes\nX11Forwarding yes\nMaxAuthTries 6\n"


class LabError(PSDirectError):
    """The lab could not be built on this machine."""


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


def free_subnet(candidates: range = range(200, 250)) -> str:
    """The first ``10.N.0`` /24 (N in ``candidates``) that no address or route here overlaps.

    Checked against ``ip -4 addr`` and ``ip -4 route`` of this namespace, so a VPN, a docker
    bridge or another lab that holds part of 10.0.0.0/8 is stepped over.
    """
    import ipaddress

    used = []
    for args in (("-4", "-o", "addr", "show"), ("-4", "route", "show", "table", "all")):
        for line in _ip(*args, check=False).stdout.splitlines():
            for word in line.split():
                with contextlib.suppress(ValueError):
                    if "/" in word or word[:1].isdigit():
                        used.append(ipaddress.ip_network(word, strict=False))
    for n in candidates:
        net = ipaddress.ip_network(f"10.{n}.0.0/24")
        if not any(net.overlaps(u) for u in used if u.prefixlen > 0):
            return f"10.{n}.0"
    raise LabError("no free 10.N.0.0/24 subnet for the lab (N = 200..249)",
                   hint="pass --subnet with a free /24")


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
                 user: str = LAB_USER) -> None:
        self.workdir = workdir.resolve()
        self.user = user
        self.count = hosts
        self.subnet = subnet or free_subnet()
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
        """Build the lab; on any failure, remove what was built and raise LabError."""
        why = missing_facilities()
        if why:
            raise LabError(why, hint="run as root on Debian with iproute2 and openssh-server")
        if self.state_file.exists():
            SSHLab.load(self.workdir).down()
        if _ip("-4", "-o", "addr", "show", "to", f"{self.subnet}.0/24").stdout.strip():
            raise LabError(f"subnet {self.subnet}.0/24 is already in use on this machine "
                           "(another lab?)", hint="take that lab down or pick another --subnet")
        self.workdir.mkdir(parents=True, exist_ok=True)
        prefix = f"psd{secrets.token_hex(2)}"
        self.state = LabState(prefix=prefix, subnet=self.subnet, bridge=f"{prefix}br", user=self.user)
        try:
            self._prepare_user()
            self._network()
            for host in self.state.hosts:
                self._start_sshd(host)
            self._save()
            for host in self.state.hosts:
                _wait_port(host.address, 22, ready_timeout)
            self._write_client_files()
        except BaseException:
            self.down()
            raise
        return self.state.hosts

    def _prepare_user(self) -> None:
        assert self.state is not None
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        user = self.user
        if _run("id", user, check=False).returncode != 0:
            _run("useradd", "--create-home", "--shell", "/bin/sh", user)
            self.state.created_user = True
        self.password = secrets.token_urlsafe(18)
        _run("chpasswd", stdin=f"{user}:{self.password}\n")  # via stdin, never argv
        if not self.key_file.exists():
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
            + (_HARDENED if host.hardened else _WEAK))
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

    def down(self) -> None:
        """Stop exactly the recorded sshd PIDs, delete namespaces, links and per-host files."""
        st = self.state
        if st is None:
            return
        for host in st.hosts:
            _stop_pid(host.pid)
            _ip("netns", "del", host.netns, check=False)
            shutil.rmtree(Path("/etc/netns") / host.netns, ignore_errors=True)
        _ip("link", "del", st.bridge, check=False)
        for i in range(1, len(st.hosts) + 1):
            _ip("link", "del", f"{st.prefix}v{i}", check=False)
        if st.created_user:
            _run("userdel", "--remove", st.user, check=False)
        self.state_file.unlink(missing_ok=True)
        self.state = None


def _stop_pid(pid: int) -> None:
    if pid <= 0:
        return
    for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    return
            except ChildProcessError:  # not our child (another process started the lab)
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return
            time.sleep(0.02)


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
