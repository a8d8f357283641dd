"""One exception hierarchy: every error names the target, what happened and how to fix it.

Example::

    >>> err = ConnectFailed("connection refused", target="ssh://admin@10.0.0.5", hint="is sshd running?")
    >>> print(err)
    ssh://admin@10.0.0.5: connection refused (hint: is sshd running?)

Subclasses take keyword attributes, never positional ``args`` slots, and their messages never hold
a secret: callers pass :class:`~pytest_psdirect.credentials.Secret` objects, not plain strings.
"""

from __future__ import annotations

from typing import Any


class PSDirectError(Exception):
    """Base class of every error pytest-psdirect raises.

    ``target`` is the canonical URL (never holds a secret), ``hint`` says how to fix it.
    """

    default_hint: str = ""

    def __init__(self, message: str, *, target: str | None = None, hint: str | None = None) -> None:
        self.message = message
        self.target = target
        self.hint = hint if hint is not None else self.default_hint
        super().__init__(message)

    def __str__(self) -> str:
        text = f"{self.target}: {self.message}" if self.target else self.message
        return f"{text} (hint: {self.hint})" if self.hint else text


class TargetSpecError(PSDirectError):
    """A target URL, option or inventory entry is malformed."""


class CredentialError(PSDirectError):
    """No credential could be found, or a credential source is unsafe or unreadable."""


class TransportUnavailable(PSDirectError):
    """The transport for a scheme is unknown, or its optional dependency is not installed."""


class ConnectFailed(PSDirectError):
    """The target could not be reached (refused, unreachable, timed out, bad host key...)."""


class AuthenticationFailed(ConnectFailed):
    """The target rejected the credential."""

    default_hint = "check the user name and password or key (--credential-env, --ssh-key, inventory)"


class HostKeyMismatch(ConnectFailed):
    """The SSH host key is unknown or differs from known_hosts."""


class SessionBroken(PSDirectError):
    """An open session died and could not be reopened."""


class SessionLimitReached(PSDirectError):
    """No session slot freed up in time (``--throttle-limit``, ``--max-sessions-per-endpoint``)."""

    default_hint = ("other sessions of this run held every slot: raise --throttle-limit or "
                    "--max-sessions-per-endpoint, or use fewer workers (-n)")


class CommandAborted(PSDirectError):
    """A command was killed before it finished; ``stdout``/``stderr`` hold what had arrived."""

    def __init__(
        self,
        message: str,
        *,
        target: str | None = None,
        hint: str | None = None,
        command: str = "",
        stdout: bytes = b"",
        stderr: bytes = b"",
    ) -> None:
        super().__init__(message, target=target, hint=hint)
        self.command = command
        self.stdout = stdout
        self.stderr = stderr


class CommandTimeout(CommandAborted):
    """A command did not finish within its ``timeout`` (seconds); it was killed."""

    def __init__(self, message: str, *, timeout: float = 0.0, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.timeout = timeout


class CommandCancelled(CommandAborted):
    """A background job was cancelled (``job.cancel()``, Ctrl-C in ``psdirect shell``, or its
    session ended); its remote processes were killed."""


class CommandFailed(PSDirectError):
    """A command exited with a status the caller did not expect (``check=True``, ``run_expect``)."""

    def __init__(
        self,
        message: str,
        *,
        target: str | None = None,
        hint: str | None = None,
        command: str = "",
        rc: int = 0,
    ) -> None:
        super().__init__(message, target=target, hint=hint)
        self.command = command
        self.rc = rc


class UnsupportedOperation(PSDirectError):
    """The transport cannot do this (e.g. ``run_ps`` over plain SSH without PowerShell)."""


class FileTransferError(PSDirectError):
    """``put``/``get`` failed."""


class OutputTooLarge(CommandAborted):
    """A command wrote more than the per-command output cap; it was killed.

    ``limit`` is the cap in bytes; ``stdout``/``stderr`` hold the first 64 KiB of each.

    >>> err = OutputTooLarge("output passed 1024 bytes", target="local://", command="yes",
    ...                      limit=1024)
    >>> "--psdirect-max-output" in str(err), err.limit
    (True, 1024)
    """

    default_hint = ("raise the cap with --psdirect-max-output SIZE (or ini psdirect_max_output, "
                    "e.g. 1G), or redirect the output to a file on the target and copy it with "
                    "target.get(remote, local)")

    def __init__(self, message: str, *, limit: int = 0, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.limit = limit


class PowerShellFailed(PSDirectError):
    """PowerShell reported errors and the caller asked for none (``run_ps(..., check=True)``).

    ``result`` is the whole :class:`~pytest_psdirect.powershell.PSResult`; the message shows the
    error records (message, category, FullyQualifiedErrorId, position).
    """

    default_hint = ("pass check=False to collect the errors in result.errors instead (remote "
                    "errors are non-terminating, as with Invoke-Command)")

    def __init__(self, message: str, *, result: Any = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.result = result


# -- PowerShell Direct (Hyper-V): the documented troubleshooting messages, each with its cause ----
class VMNotFound(ConnectFailed):
    """"The input VMName parameter does not resolve to any virtual machine." (or VMId)."""

    default_hint = ("you are not a Hyper-V administrator on the host, or no such VM exists there: "
                    "run Get-VM on the host (as the same account) to list the VMs you can see")


class GuestAuthenticationFailed(AuthenticationFailed):
    """"The credential is invalid.": the guest could not validate the VM credential."""

    default_hint = ("the guest rejected the credential: check the user name and password "
                    "(--credential-env PREFIX, an inventory credential); a guest whose OS never "
                    "booted has no accounts yet; Administrator must be an active user")


class GuestNotReady(ConnectFailed):
    """"A remote session might have ended.": the VM is off, the guest is still booting, or the
    guest's vmicvmsession service hung."""

    default_hint = ("the VM may be off (Get-VM on the host; Start-VM), the guest may still be "
                    "booting or waiting for input, or its PowerShell Direct service hung: in the "
                    "guest (VMConnect) run Restart-Service -Name vmicvmsession")


class HyperVHostTooOld(ConnectFailed):
    """New-PSSession has no -VMName/-VMId parameter on the Hyper-V host."""

    default_hint = ("PowerShell Direct needs a Windows 10 / Windows Server 2016 (or later) host "
                    "and PowerShell 5 or later: check [System.Environment]::OSVersion.Version and "
                    "$PSVersionTable.PSVersion on the host")


class RunAsAdministratorNotForVMs(TargetSpecError):
    """"Parameter set cannot be resolved using the specified named parameters.": -RunAsAdministrator
    is for Windows containers; a VM gives the host no implicit administrator access."""

    default_hint = ("a VM gives the host no implicit administrator access: give the VM's "
                    "administrator credential instead (--credential-env PREFIX or an inventory "
                    "credential); -RunAsAdministrator only applies to containers")


# -- VM lifecycle (hypervisors layer) ------------------------------------------------------------
class VMLifecycleError(PSDirectError):
    """A VM lifecycle step (state, start, stop, checkpoint, restore) failed on the hypervisor."""


class VMNotRunning(VMLifecycleError):
    """The VM is Off, Saved or Paused and the run was not allowed to start it."""

    default_hint = "start it yourself (Start-VM on the Hyper-V host), or pass --vm-start"


class VMReadyTimeout(VMLifecycleError):
    """The VM did not become ready (heartbeat OK and a PowerShell Direct probe) in time."""

    default_hint = ("the guest may still be booting, installing updates or waiting at a prompt "
                    "(look with VMConnect); raise --vm-ready-timeout if it is only slow; if the "
                    "heartbeat is OK but the probe fails, run Restart-Service -Name vmicvmsession "
                    "in the guest")


class CheckpointNotFound(VMLifecycleError):
    """Restore-VMSnapshot / Remove-VMSnapshot: the VM has no checkpoint of that name."""

    default_hint = "list the VM's checkpoints on the host: Get-VMCheckpoint -VMName NAME"


class ContainerNotFound(ConnectFailed):
    """No container of that name or id on the runtime(s) asked (``podman ps -a`` lists them)."""


class ContainerNotRunning(ConnectFailed):
    """The container exists but is not running (created, exited, paused)."""


class ComplianceError(PSDirectError, ValueError):
    """A compliance resource, reason, waiver or report input breaks its contract."""
