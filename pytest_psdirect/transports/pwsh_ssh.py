"""``pwsh+ssh://[user@]host[:port]``: PowerShell over SSH, as ``Enter-PSSession -HostName``.

The SSH connection is the ``ssh://`` transport's (same keys, known_hosts, ssh_config, URL options
and error mapping); on it one channel runs the server's ``powershell`` subsystem, which carries
the OutOfProc engine. The server needs, in sshd_config::

    Subsystem powershell /usr/bin/pwsh -sshs -NoLogo

(on Windows: ``Subsystem powershell c:/progra~1/powershell/7/pwsh.exe -sshs -NoLogo``).
"""

from __future__ import annotations

import logging
from typing import ClassVar

import paramiko

from ..errors import ConnectFailed
from ..powershell.engine import PSEngine
from ..powershell.outofproc import OutOfProcEngine
from .executor import ShellPipes
from .powershell import PowerShellTransport
from .ssh import SSHTransport, _ChannelPipes

log = logging.getLogger(__name__)
SUBSYSTEM_HINT = ("enable PowerShell remoting over SSH on the host: install PowerShell 7 and add "
                  "'Subsystem powershell /usr/bin/pwsh -sshs -NoLogo' to sshd_config, then "
                  "restart sshd")


class PwshSSHTransport(PowerShellTransport):
    """A RunspacePool on the SSH ``powershell`` subsystem."""

    scheme: ClassVar[str] = "pwsh+ssh"
    subsystem: ClassVar[str] = "powershell"
    _ssh: SSHTransport | None = None

    def open(self) -> None:
        __tracebackhide__ = True
        ssh = SSHTransport(self.target, self.credential, self.settings)
        ssh.connect()
        self._ssh = ssh
        try:
            super().open()
        except BaseException:
            self.close()
            raise

    def _subsystem(self, timeout: float) -> ShellPipes:
        assert self._ssh is not None
        try:
            chan = self._ssh.open_subsystem(self.subsystem, timeout)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise ConnectFailed(f"the SSH server refused the {self.subsystem!r} subsystem: {exc}",
                                target=self.target.url, hint=SUBSYSTEM_HINT) from None
        return _ChannelPipes(chan)

    def _make_engine(self) -> PSEngine:
        return OutOfProcEngine(self._subsystem, label=self.target.url)

    @property
    def alive(self) -> bool:
        return super().alive and self._ssh is not None and self._ssh.alive

    def close(self) -> None:
        super().close()
        if self._ssh is not None:
            self._ssh.close()
            self._ssh = None
