"""Built-in answers of the test PSRP server, keyed by a marker found in the script text.

``psrp-test:*`` markers are the tests' own scripts; the others answer the scripts the plugin
sends (``target.run``'s RUN_NATIVE, the put/get scripts of ``powershell/files.py``) by doing on
this machine's disk what the PowerShell would do on the target's.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import time
from typing import Any

from psrpcore.types import ErrorCategory, PSCustomObject, PSObject, add_note_property

from .context import Context, Handler


def _custom(type_name: str, **props: Any) -> PSObject:
    obj = PSObject()
    obj.PSObject.type_names = [type_name, "System.Object"]
    for name, value in props.items():
        add_note_property(obj, name, value)
    return obj


def objects(ctx: Context) -> None:
    svc = _custom("System.ServiceProcess.ServiceController", Name="W3SVC", Status="Running",
                  DependentServices=["HTTP", "WAS"])
    ctx.output("text", 42, True, 2.5, None, [1, "two"], {"k": "v", "n": 1},
               PSCustomObject(Name="x", Size=3), svc, b"\x00\x01")


def streams(ctx: Context) -> None:
    ctx.output("out")
    ctx.warning("careful")
    ctx.verbose("chatty")
    ctx.debug("internals")
    ctx.information("info text")
    ctx.progress("Copying", "3 of 4", 75)
    ctx.error("it broke", category=ErrorCategory.ObjectNotFound,
              fqid="PathNotFound,Microsoft.PowerShell.Commands.GetItemCommand",
              target="C:\\nope", exception="System.Management.Automation.ItemNotFoundException",
              position="At line:1 char:1\n+ Get-Item C:\\nope\n+ ~~~~~~~~~~~~~~~~~")


def echo(ctx: Context) -> None:
    ctx.output(_custom("psrp-test.Echo", Args=list(ctx.args),
                       Params={k: v for k, v in ctx.params.items()}))


def set_state(ctx: Context) -> None:
    ctx.state["p"] = ctx.params["Value"]


def get_state(ctx: Context) -> None:
    ctx.output(ctx.state.get("p"))


def credential(ctx: Context) -> None:
    user, password = ctx.reveal(ctx.params["Cred"])
    ctx.output(_custom("psrp-test.Cred", UserName=user,
                       PasswordSha256=hashlib.sha256(password.encode()).hexdigest()))


def sleep(ctx: Context) -> None:
    ctx.output("started")
    if ctx.sleep(float(ctx.params.get("Seconds", 30))):
        ctx.output("finished")


def die(ctx: Context) -> None:
    ctx.output("dying")
    time.sleep(0.2)
    os._exit(137)


def throw(ctx: Context) -> None:
    ctx.output("before")
    ctx.fail("terminating failure")


def run_native(ctx: Context) -> None:
    proc = subprocess.run(["/bin/sh", "-c", ctx.params["Command"]], capture_output=True,
                          cwd=ctx.params.get("WorkDir") or None, stdin=subprocess.DEVNULL,
                          timeout=60)
    ctx.output(PSCustomObject(rc=proc.returncode, stdout=proc.stdout.decode(errors="replace"),
                              stderr=proc.stderr.decode(errors="replace")))


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def put_chunk(ctx: Context) -> None:
    p = ctx.params
    part = p.get("Part") or ""
    if not part:
        path = os.path.abspath(p["Path"])
        part = os.path.join(os.path.dirname(path),
                            f".{os.path.basename(path)}.psdirect-{p['Token']}.part")
        mode = "xb"
    else:
        mode = "ab"
    try:
        with open(part, mode) as f:
            f.write(bytes(p.get("Data") or b""))
    except OSError as exc:
        ctx.error(f"Could not write '{part}': {exc.strerror}",
                  category=ErrorCategory.WriteError, fqid="System.IO.IOException")
        return
    ctx.output(part)


def put_finish(ctx: Context) -> None:
    p = ctx.params
    actual = _sha256(p["Part"])
    if actual != p["Sha256"]:
        os.unlink(p["Part"])
        ctx.fail(f"SHA-256 of the copy is {actual}, expected {p['Sha256']}")
        return
    os.replace(p["Part"], p["Path"])


def put_abort(ctx: Context) -> None:
    with contextlib.suppress(OSError):
        os.unlink(ctx.params["Part"])


def get_stat(ctx: Context) -> None:
    path = ctx.params["Path"]
    if not os.path.isfile(path):
        ctx.error(f"Cannot find path '{path}' because it does not exist.",
                  category=ErrorCategory.ObjectNotFound,
                  fqid="PathNotFound,Microsoft.PowerShell.Commands.GetItemCommand", target=path)
        return
    ctx.output(PSCustomObject(Length=os.path.getsize(path), Sha256=_sha256(path)))


def get_chunk(ctx: Context) -> None:
    p = ctx.params
    with open(p["Path"], "rb") as f:
        f.seek(int(p["Offset"]))
        data = f.read(int(p["Count"]))
    if "psrp-test-corrupt" in p["Path"]:
        data = bytes([data[0] ^ 0xFF]) + data[1:]
    ctx.output(data)


HANDLERS: dict[str, Handler] = {
    "psrp-test:objects": objects,
    "psrp-test:streams": streams,
    "psrp-test:echo": echo,
    "psrp-test:set": set_state,
    "psrp-test:get": get_state,
    "psrp-test:cred": credential,
    "psrp-test:sleep": sleep,
    "psrp-test:die": die,
    "psrp-test:throw": throw,
    "System.Diagnostics.ProcessStartInfo": run_native,
    "# psdirect:put-chunk": put_chunk,
    "# psdirect:put-finish": put_finish,
    "# psdirect:put-abort": put_abort,
    "# psdirect:get-stat": get_stat,
    "# psdirect:get-chunk": get_chunk,
}
