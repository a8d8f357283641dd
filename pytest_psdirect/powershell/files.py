"""``put``/``get`` over any PowerShell engine: chunked, hashed, streamed, never a partial file.

put: the local file is read 1 MiB at a time; each chunk goes as a ``[byte[]]`` parameter (base64
in the CLIXML) to a small script that appends it to a temporary file beside the target (the first
call creates it and returns its name); at the end the remote SHA-256 is compared with the one
computed while reading, and only then is the file moved into place. Any failure removes the
temporary file. get: the size and SHA-256 first, then 1 MiB reads at offsets into a local
temporary file, hashed as it is written; renamed into place only when the hashes match.
Neither side ever holds more than one chunk.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
from collections.abc import Callable
from typing import Any

from ..errors import FileTransferError, PSDirectError
from ..transports.files import atomic_local_file
from .command import build_invocation
from .result import PSResult

log = logging.getLogger(__name__)
CHUNK = 1 << 20

#: (script, values, timeout) -> result; the transport's run_ps with its timeouts
Invoke = Callable[[str, dict[str, Any], float], PSResult]

PUT_CHUNK = r"""# psdirect:put-chunk
param([string]$Path, [string]$Part, [string]$Token, [byte[]]$Data)
if (-not $Part) {
    $dir = [IO.Path]::GetDirectoryName([IO.Path]::GetFullPath($Path))
    $Part = [IO.Path]::Combine($dir, '.' + [IO.Path]::GetFileName($Path) + '.psdirect-' + $Token + '.part')
    $fs = [IO.File]::Open($Part, [IO.FileMode]::CreateNew, [IO.FileAccess]::Write)
} else {
    $fs = [IO.File]::Open($Part, [IO.FileMode]::Append, [IO.FileAccess]::Write)
}
try { if ($Data) { $fs.Write($Data, 0, $Data.Length) } } finally { $fs.Dispose() }
$Part
"""

_HASH = r"""
function Get-PsdSha256([string]$File) {
    $sha = [Security.Cryptography.SHA256]::Create()
    $fs = [IO.File]::OpenRead($File)
    try { ([BitConverter]::ToString($sha.ComputeHash($fs)) -replace '-', '').ToLowerInvariant() }
    finally { $fs.Dispose(); $sha.Dispose() }
}
"""

PUT_FINISH = r"""# psdirect:put-finish
param([string]$Path, [string]$Part, [string]$Sha256)
""" + _HASH + r"""
$actual = Get-PsdSha256 $Part
if ($actual -ne $Sha256) {
    Remove-Item -LiteralPath $Part -Force
    throw "SHA-256 of the copy is $actual, expected $Sha256"
}
Move-Item -LiteralPath $Part -Destination $Path -Force
"""

PUT_ABORT = r"""# psdirect:put-abort
param([string]$Part)
Remove-Item -LiteralPath $Part -Force -ErrorAction SilentlyContinue
"""

GET_STAT = r"""# psdirect:get-stat
param([string]$Path)
""" + _HASH + r"""
$item = Get-Item -LiteralPath $Path -ErrorAction Stop
if ($item.PSIsContainer) { throw "$Path is a directory" }
[pscustomobject]@{ Length = [long]$item.Length; Sha256 = (Get-PsdSha256 $item.FullName) }
"""

GET_CHUNK = r"""# psdirect:get-chunk
param([string]$Path, [long]$Offset, [int]$Count)
$fs = [IO.File]::OpenRead($Path)
try {
    [void]$fs.Seek($Offset, [IO.SeekOrigin]::Begin)
    $buf = New-Object byte[] $Count
    $n = $fs.Read($buf, 0, $Count)
    if ($n -lt $Count) { $buf = $buf[0..($n - 1)] }
    if ($n -eq 0) { $buf = [byte[]]@() }
    Write-Output -NoEnumerate ([byte[]]$buf)
} finally { $fs.Dispose() }
"""


def _call(invoke: Invoke, script: str, values: dict[str, Any], timeout: float,
          what: str, target: str) -> PSResult:
    try:
        result = invoke(script, values, timeout)
    except PSDirectError as exc:
        raise FileTransferError(f"copy {what} failed: {exc.message}", target=target,
                                hint=exc.hint) from None
    if result.errors:
        raise FileTransferError(f"copy {what} failed: {result.errors[0].message}", target=target,
                                hint="check both paths and their permissions")
    return result


def put(invoke: Invoke, local: str, remote: str, *, stall: float, finish: float,
        target: str) -> None:
    """Copy ``local`` to ``remote``; ``stall`` bounds one chunk, ``finish`` the hash + rename."""
    what = f"{local} -> {remote}"
    digest = hashlib.sha256()
    part = ""
    try:
        with open(local, "rb") as src:
            while True:
                chunk = src.read(CHUNK)
                if part and not chunk:
                    break
                digest.update(chunk)
                r = _call(invoke, PUT_CHUNK, {"Path": remote, "Part": part,
                                              "Token": secrets.token_hex(4), "Data": chunk},
                          stall, what, target)
                part = part or str(r.output[-1])
                if not chunk:
                    break
        _call(invoke, PUT_FINISH, {"Path": remote, "Part": part, "Sha256": digest.hexdigest()},
              finish, what, target)
        part = ""
    except OSError as exc:
        raise FileTransferError(f"copy {what} failed: {exc.strerror or exc}", target=target,
                                hint="check the local path and its permissions") from None
    finally:
        if part:
            with contextlib.suppress(PSDirectError):
                invoke(PUT_ABORT, {"Part": part}, stall)


def get(invoke: Invoke, remote: str, local: str, *, stall: float, finish: float,
        target: str) -> None:
    """Copy ``remote`` to ``local`` (a temporary name until the SHA-256 matches)."""
    what = f"{remote} -> {local}"
    stat = _call(invoke, GET_STAT, {"Path": remote}, finish, what, target).output[0]
    length, expected = int(stat["Length"]), str(stat["Sha256"])
    digest = hashlib.sha256()
    try:
        with atomic_local_file(local) as part, open(part, "wb") as dst:
            offset = 0
            while offset < length:
                data = _call(invoke, GET_CHUNK, {"Path": remote, "Offset": offset,
                                                 "Count": min(CHUNK, length - offset)},
                             stall, what, target).output
                chunk = bytes(data[0]) if data else b""
                if not chunk:
                    raise FileTransferError(f"copy {what} failed: the file shrank at {offset}",
                                            target=target, hint="is something writing it?")
                dst.write(chunk)
                digest.update(chunk)
                offset += len(chunk)
            dst.flush()
            if digest.hexdigest() != expected:
                raise FileTransferError(
                    f"copy {what} failed: SHA-256 {digest.hexdigest()} differs from the "
                    f"target's {expected}", target=target, hint="is something writing it?")
    except OSError as exc:
        raise FileTransferError(f"copy {what} failed: {exc.strerror or exc}", target=target,
                                hint="check the local path and its permissions") from None


def invoker(run_ps: Callable[..., PSResult]) -> Invoke:
    """Adapt a transport's ``run_ps(invocation, timeout=)`` to :data:`Invoke`."""
    def invoke(script: str, values: dict[str, Any], timeout: float) -> PSResult:
        return run_ps(build_invocation(script, (), values), timeout=timeout)
    return invoke
