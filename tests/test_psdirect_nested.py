"""vm:// and vmid:// through a (simulated) Hyper-V host: New-PSSession once, Invoke-Command per
call, the documented errors, files in two hops, Remove-PSSession at the end."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from hyperv_sim.sim import GUEST_PASSWORD, GUEST_USER, HOSTILE_NAME, HyperVSim

from pytest_psdirect import Settings
from pytest_psdirect.credentials.secret import Credential, Secret
from pytest_psdirect.errors import (
    CredentialError,
    GuestAuthenticationFailed,
    GuestNotReady,
    HyperVHostTooOld,
    PowerShellFailed,
    VMNotFound,
)
from pytest_psdirect.pool import SessionPool
from pytest_psdirect.sessions import TargetSession
from pytest_psdirect.targets import parse_target
from pytest_psdirect.transports import TransportRegistry

GOOD = Credential(GUEST_USER, Secret(GUEST_PASSWORD))


@pytest.fixture
def sim(tmp_path: Path) -> HyperVSim:
    sim = HyperVSim(tmp_path / "hv")
    sim.add_vm("web01", vm_id="4f2c8d1a-0000-4000-8000-00000000abcd")
    sim.add_vm("off01", state="Off")
    return sim


@pytest.fixture
def pool_for() -> Iterator[Callable[[Credential | None], SessionPool]]:
    pools: list[SessionPool] = []

    def make(credential: Credential | None = GOOD) -> SessionPool:
        pool = SessionPool(TransportRegistry(), Settings(connect_timeout=10, command_timeout=30),
                           lambda t, required: credential)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.close_all()


def vm_url(sim: HyperVSim, name: str, scheme: str = "vm") -> str:
    return f"{scheme}://{quote(name, safe='')}?host={quote(sim.host_url, safe='')}"


@pytest.fixture
def web01(sim: HyperVSim, pool_for: Callable[..., SessionPool]) -> TargetSession:
    return pool_for().get(parse_target(vm_url(sim, "web01")))


def test_run_ps_reaches_the_guest_by_name(web01: TargetSession, sim: HyperVSim) -> None:
    r = web01.run_ps("# guest:whoami")
    assert r.output[0]["ComputerName"] == "web01" and r.output[0]["UserName"] == GUEST_USER
    assert r.target == web01.url and not r.had_errors
    assert sim.counts()["new-pssession"] == 1


def test_by_id(sim: HyperVSim, pool_for: Callable[..., SessionPool]) -> None:
    session = pool_for().get(parse_target(vm_url(sim, "{4F2C8D1A-0000-4000-8000-00000000ABCD}",
                                                 "vmid")))
    assert session.url.startswith("vmid://4f2c8d1a-0000-4000-8000-00000000abcd?")
    assert session.run_ps("# guest:whoami").output[0]["ComputerName"] == "web01"
    assert sim.events()[-1]["event"] == "invoke-command"
    opened = [e for e in sim.events() if e["event"] == "new-pssession"]
    assert opened[0]["vm_id"] == "4f2c8d1a-0000-4000-8000-00000000abcd" and not opened[0]["vm_name"]


def test_hostile_vm_name_arrives_intact(sim: HyperVSim, pool_for: Callable[..., SessionPool]) -> None:
    sim.add_vm(HOSTILE_NAME)
    session = pool_for().get(parse_target(vm_url(sim, HOSTILE_NAME)))
    assert session.run_ps("# guest:whoami").output[0]["ComputerName"] == HOSTILE_NAME
    assert [e["vm_name"] for e in sim.events() if e["event"] == "new-pssession"] == [HOSTILE_NAME]


def test_values_and_named_parameters_pass_as_data(web01: TargetSession) -> None:
    hostile = "'; Remove-Item C:\\ -Recurse; $x `"
    r = web01.run_ps("# guest:echo", hostile, 7, Name=hostile, Count=3)
    assert r.output[0]["Args"] == [hostile, 7]
    assert r.output[0]["Params"] == {"Name": hostile, "Count": 3}


def test_state_is_kept_between_calls(web01: TargetSession) -> None:
    web01.run_ps("# guest:set", Value="kept")
    assert web01.run_ps("# guest:get").output == ["kept"]


def test_guest_errors_are_non_terminating_and_streams_come_back(web01: TargetSession) -> None:
    r = web01.run_ps("# guest:streams")
    assert r.output == ["out", "after the error"]
    assert r.had_errors and r.errors[0].fully_qualified_error_id.startswith("PathNotFound")
    assert r.warning == ["guest warning"] and r.verbose == ["guest verbose"]
    with pytest.raises(PowerShellFailed, match="Cannot find path"):
        web01.run_ps("# guest:streams", check=True)
    assert web01.run_ps("# guest:get").output == [None]  # the session is still usable


def test_run_goes_through_the_guest(web01: TargetSession, sim: HyperVSim) -> None:
    r = web01.run("pwd; echo err >&2; exit 3")
    guest_root = sim.dir / "guests" / "4f2c8d1a-0000-4000-8000-00000000abcd"
    assert (r.rc, r.stdout.strip(), r.stderr) == (3, str(guest_root), "err\n")


def test_missing_credential_is_a_clear_error(sim: HyperVSim,
                                             pool_for: Callable[..., SessionPool]) -> None:
    with pytest.raises(CredentialError, match="no implicit administrator"):
        pool_for(None).get(parse_target(vm_url(sim, "web01")))
    assert sim.counts()["new-pssession-attempt"] == 0


def test_rejected_credential(sim: HyperVSim, pool_for: Callable[..., SessionPool]) -> None:
    bad = Credential(GUEST_USER, Secret("bad-guess-7731"))
    with pytest.raises(GuestAuthenticationFailed, match="The credential is invalid") as info:
        pool_for(bad).get(parse_target(vm_url(sim, "web01")))
    assert "never booted" in str(info.value) and "bad-guess-7731" not in str(info.value)


def test_vm_off(sim: HyperVSim, pool_for: Callable[..., SessionPool]) -> None:
    with pytest.raises(GuestNotReady, match="A remote session might have ended") as info:
        pool_for().get(parse_target(vm_url(sim, "off01")))
    assert "Restart-Service -Name vmicvmsession" in str(info.value)


def test_unknown_vm(sim: HyperVSim, pool_for: Callable[..., SessionPool]) -> None:
    with pytest.raises(VMNotFound, match="does not resolve to any virtual machine") as info:
        pool_for().get(parse_target(vm_url(sim, "nosuch")))
    assert "Get-VM" in str(info.value) and "Hyper-V administrator" in str(info.value)


def test_host_too_old(sim: HyperVSim, pool_for: Callable[..., SessionPool]) -> None:
    sim.host_too_old = True
    sim.save()
    with pytest.raises(HyperVHostTooOld, match="'VMName'") as info:
        pool_for().get(parse_target(vm_url(sim, "web01")))
    assert "Windows Server 2016" in str(info.value)


@pytest.mark.parametrize("size", [0, 5, 1 << 20 | 17])
def test_put_get_through_the_host(web01: TargetSession, sim: HyperVSim, tmp_path: Path,
                                  size: int) -> None:
    src, back = tmp_path / "src.bin", tmp_path / "back.bin"
    src.write_bytes(os.urandom(size))
    guest_dir = sim.guest_file("4f2c8d1a-0000-4000-8000-00000000abcd", "C:\\data")
    guest_dir.mkdir(parents=True)
    web01.put(str(src), "C:\\data\\app.bin")
    assert (guest_dir / "app.bin").read_bytes() == src.read_bytes()
    web01.get("C:\\data\\app.bin", str(back))
    assert back.read_bytes() == src.read_bytes()
    assert sim.host_temp_files() == [] and sorted(os.listdir(guest_dir)) == ["app.bin"]
    assert sorted(os.listdir(tmp_path)) == ["back.bin", "hv", "src.bin"]
    counts = sim.counts()
    assert counts["copy-item-to-session"] == counts["copy-item-from-session"] == 1


def test_get_of_a_missing_guest_file_leaves_nothing(web01: TargetSession, sim: HyperVSim,
                                                    tmp_path: Path) -> None:
    from pytest_psdirect.errors import FileTransferError

    with pytest.raises(FileTransferError, match="Cannot find path"):
        web01.get("C:\\nope.txt", str(tmp_path / "x"))
    assert not (tmp_path / "x").exists() and sim.host_temp_files() == []


def test_one_session_for_many_calls_and_close_removes_it(
        sim: HyperVSim, pool_for: Callable[..., SessionPool]) -> None:
    pool = pool_for()
    for _ in range(25):  # as 25 tests on one target would
        assert pool.get(parse_target(vm_url(sim, "web01"))).run_ps("# guest:whoami").output
    counts = sim.counts()
    assert (counts["new-pssession"], counts["invoke-command"], counts["remove-pssession"]) == (1, 25, 0)
    pool.close_all()
    assert sim.counts()["remove-pssession"] == 1


def test_the_host_refuses_other_scripts(sim: HyperVSim, pool_for: Callable[..., SessionPool]) -> None:
    host = pool_for().get(parse_target(sim.host_url))
    r = host.run_ps("# psrp-test:echo")
    assert r.errors[0].fully_qualified_error_id == "SimRefused"


def test_nested_route_opens_one_session_the_naive_route_one_per_command(
        capsys: pytest.CaptureFixture[str]) -> None:
    """bench/psdirect.py on a small scale: the counts are the point, figures are printed."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "bench" / "psdirect.py"
    spec = importlib.util.spec_from_file_location("bench_psdirect", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = bench.measure(20, 0.0)
    assert (out["nested"]["new_pssession"], out["nested"]["invoke_command"]) == (0, 20)
    assert (out["naive"]["new_pssession"], out["naive"]["invoke_command"],
            out["naive"]["remove_pssession"]) == (20, 20, 20)
    with capsys.disabled():
        print("\n" + capsys.readouterr().out)


def test_a_broken_guest_session_is_reopened_once(web01: TargetSession, sim: HyperVSim) -> None:
    """The guest's PowerShell Direct service hangs: that call fails (GuestNotReady's message),
    the next one gets a new New-PSSession and works; the broken session was removed."""
    web01.run_ps("# guest:set", Value="lost with the session")
    r = web01.run_ps("# guest:hang")
    assert r.had_errors and "A remote session might have ended" in r.errors[0].message
    r = web01.run_ps("# guest:get")
    assert r.had_errors and r.errors[0].fully_qualified_error_id.startswith("InvalidSessionState")
    assert web01.run_ps("# guest:get").output == [None]  # a new session: new guest state
    counts = sim.counts()
    assert (counts["new-pssession"], counts["remove-pssession"]) == (2, 1)


def test_usage_error_for_a_vm_host_that_is_not_powershell(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(target): pass")
    result = pytester.runpytest("--hosts", "vm://web01?host=ssh://hv01")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*Hyper-V host 'ssh://hv01' is a ssh:// target*"])


def test_timeout_in_the_guest_names_the_vm_and_keeps_the_session(web01: TargetSession,
                                                                sim: HyperVSim) -> None:
    from pytest_psdirect.errors import CommandTimeout

    web01.run_ps("# guest:set", Value="still here")
    with pytest.raises(CommandTimeout) as info:
        web01.run_ps("# guest:sleep", Seconds=30, timeout=1)
    assert info.value.target == web01.url
    assert web01.run_ps("# guest:get").output == ["still here"]
    assert sim.counts()["new-pssession"] == 1
