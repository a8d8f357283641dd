"""The VM tests against a real Hyper-V host and VM, when they are named:

PSDIRECT_LIVE_HYPERV_HOST (the Hyper-V host: a winrm://, pwsh+ssh:// or pwsh:// URL or a name;
set but empty: this machine is the host), PSDIRECT_LIVE_HYPERV_VM (the VM's name),
PSDIRECT_LIVE_HYPERV_USERNAME and PSDIRECT_LIVE_HYPERV_PASSWORD (an account in the guest), and
optionally PSDIRECT_LIVE_HYPERV_HOST_CREDENTIAL (a reference for the host session, e.g.
env:HVHOST) and PSDIRECT_LIVE_HYPERV_CHECKPOINT (the name of a checkpoint of that VM that the
tests may restore; setting it allows the tests that checkpoint, restore and restart the VM).
Otherwise every test here is skipped with the reason (one line in -rs).
"""

from __future__ import annotations

import os
import secrets
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_psdirect import Credential, Secret, Settings
from pytest_psdirect.errors import CheckpointNotFound
from pytest_psdirect.hypervisors.hyperv.lifecycle import HyperVHost
from pytest_psdirect.hypervisors.hyperv.nested import VMRef
from pytest_psdirect.pool import SessionPool
from pytest_psdirect.sessions import TargetSession
from pytest_psdirect.targets import parse_target
from pytest_psdirect.transports import TransportRegistry
from pytest_psdirect.transports.psdirect import hyperv_host_target

PREFIX = "PSDIRECT_LIVE_HYPERV_"
MISSING = ([PREFIX + "HOST"] if PREFIX + "HOST" not in os.environ else []) + [
    PREFIX + n for n in ("VM", "USERNAME", "PASSWORD") if not os.environ.get(PREFIX + n)]
if MISSING:  # one skip line for the module, with what is missing
    pytest.skip("no live Hyper-V VM: set " + ", ".join(MISSING) + " (HOST may be empty: this "
                "machine)", allow_module_level=True)

HOST = os.environ[PREFIX + "HOST"]
VM = os.environ[PREFIX + "VM"]
HOST_CREDENTIAL = os.environ.get(PREFIX + "HOST_CREDENTIAL", "")
CHECKPOINT = os.environ.get(PREFIX + "CHECKPOINT", "")
SETTINGS = Settings(connect_timeout=60, command_timeout=600)
destructive = pytest.mark.skipif(not CHECKPOINT, reason=f"set {PREFIX}CHECKPOINT to allow "
                                 "tests that checkpoint, restore and restart the VM")


def vm_url() -> str:
    query = {"host": hyperv_host_target(HOST or None).url}
    if HOST_CREDENTIAL:
        query["host_credential"] = HOST_CREDENTIAL
    return f"vm://{urllib.parse.quote(VM, safe='')}?{urllib.parse.urlencode(query)}"


def credential() -> Credential:
    return Credential(os.environ[PREFIX + "USERNAME"], Secret(os.environ[PREFIX + "PASSWORD"]))


@pytest.fixture(scope="module")
def pool() -> Iterator[SessionPool]:
    pool = SessionPool(TransportRegistry(), SETTINGS, lambda t, required: credential())
    yield pool
    pool.close_all()


@pytest.fixture(scope="module")
def hv() -> Iterator[HyperVHost]:
    from pytest_psdirect.credentials.providers import resolve_reference

    host = hyperv_host_target(HOST or None)
    host_cred = resolve_reference(HOST_CREDENTIAL, Path.cwd()) if HOST_CREDENTIAL else None
    transport = TransportRegistry().get(host.scheme)(host, host_cred, SETTINGS)
    hv = HyperVHost(transport, timeout=SETTINGS.command_timeout)
    yield hv
    hv.close()


def session(pool: SessionPool) -> TargetSession:
    return pool.get(parse_target(vm_url()))


def test_the_vm_is_running_and_ready(hv: HyperVHost) -> None:
    status = hv.state(VMRef(name=VM))
    assert status.state == "Running", f"start {VM!r} first (or run the plugin with --vm-start)"
    assert hv.wait_ready(VMRef(name=VM), 300, credential()) < 300


def test_run_ps_state_and_files(pool: SessionPool, tmp_path: Path) -> None:
    s = session(pool)
    r = s.run_ps("$env:COMPUTERNAME")
    assert r.output and isinstance(r.output[0], str) and not r.had_errors
    s.run_ps("param($v) $global:psdLive = $v", "kept")
    assert s.run_ps("$global:psdLive").output == ["kept"]
    src = tmp_path / "in.bin"
    src.write_bytes(secrets.token_bytes(300_000))
    remote = s.run_ps("[IO.Path]::GetTempPath()").output[0] + f"psdirect-{secrets.token_hex(4)}.bin"
    s.put(str(src), remote)
    s.get(remote, str(tmp_path / "out.bin"))
    s.run_ps("param($p) Remove-Item -LiteralPath $p", remote)
    assert (tmp_path / "out.bin").read_bytes() == src.read_bytes()
    assert s.run("echo %COMPUTERNAME%").stdout.strip() == r.output[0]


def test_unknown_checkpoint_is_hyper_vs_error(hv: HyperVHost) -> None:
    with pytest.raises(CheckpointNotFound):
        hv.restore(VMRef(name=VM), f"psdirect-no-such-{secrets.token_hex(4)}")


@destructive
def test_a_temporary_checkpoint_restores_the_guest(hv: HyperVHost, pool: SessionPool) -> None:
    vm, s = VMRef(name=VM), session(pool)
    marker = s.run_ps("Join-Path ([IO.Path]::GetTempPath()) 'psdirect-live-marker.txt'").output[0]
    s.run_ps("param($p) Remove-Item -LiteralPath $p -ErrorAction SilentlyContinue", marker)
    name = f"psdirect-live-{secrets.token_hex(4)}"
    hv.checkpoint(vm, name)
    try:
        s.run_ps("param($p) Set-Content -LiteralPath $p -Value dirty", marker, check=True)
        hv.restore(vm, name)
        s.close()
        if hv.state(vm).state != "Running":
            hv.start(vm)
        hv.wait_ready(vm, 600, credential())
        assert s.run_ps("param($p) Test-Path -LiteralPath $p", marker).output == [False]
    finally:
        hv.remove_checkpoint(vm, name)


@destructive
def test_the_plugin_restores_the_named_checkpoint(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(f"""
        import pytest

        @pytest.mark.checkpoint({CHECKPOINT!r})
        def test_after_restore(target):
            assert target.run_ps("$env:COMPUTERNAME").output
    """)
    args = ["--vm-name", VM, "--credential-env", PREFIX.rstrip("_"), "--vm-start"]
    if HOST:
        args += ["--hyperv-host", HOST]
    if HOST_CREDENTIAL:
        args += ["--hyperv-host-credential", HOST_CREDENTIAL]
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=1)
