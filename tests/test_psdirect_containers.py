"""Windows containers (``--container-id``, ``container://ID``) through the simulated container host:
``New-PSSession -ContainerId [-RunAsAdministrator]`` kept for the run, no credential needed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from hyperv_sim.sim import HyperVSim

from pytest_psdirect import Settings, TargetSpecError
from pytest_psdirect.errors import ConnectFailed, GuestNotReady, PSDirectError
from pytest_psdirect.pool import SessionPool
from pytest_psdirect.targets import parse_target
from pytest_psdirect.transports import TransportRegistry

CID = "3f2a9c0d1e4b"


@pytest.fixture
def sim(tmp_path: Path) -> HyperVSim:
    sim = HyperVSim(tmp_path / "hv")
    sim.add_container(CID)
    sim.add_container("stopped1", state="Exited")
    return sim


@pytest.fixture
def pool() -> Iterator[SessionPool]:
    p = SessionPool(TransportRegistry(), Settings(connect_timeout=10, command_timeout=30),
                    lambda t, required: None)  # no credential anywhere
    yield p
    p.close_all()


def url(sim: HyperVSim, cid: str, admin: bool = False) -> str:
    extra = "&run_as_administrator=1" if admin else ""
    return f"container://{cid}?host={quote(sim.host_url, safe='')}{extra}"


@pytest.mark.parametrize(("admin", "user"), [(False, "ContainerUser"),
                                             (True, "ContainerAdministrator")])
def test_container_session_needs_no_credential(sim: HyperVSim, pool: SessionPool, admin: bool,
                                               user: str) -> None:
    session = pool.get(parse_target(url(sim, CID, admin)))
    r = session.run_ps("# guest:whoami")
    assert r.output[0]["UserName"] == user and r.output[0]["ComputerName"] == CID
    session.run_ps("# guest:set", Name="p", Value=42)
    assert session.run_ps("# guest:get", Name="p").output == [42]  # state kept
    opened = [e for e in sim.events() if e["event"] == "new-pssession"]
    assert [(e["container_id"], e["user"]) for e in opened] == [(CID, user)]


def test_unknown_and_stopped_containers_fail_with_the_cause(sim: HyperVSim,
                                                           pool: SessionPool) -> None:
    with pytest.raises(PSDirectError, match="ContainerId nope does not exist"):
        pool.get(parse_target(url(sim, "nope")))
    with pytest.raises((GuestNotReady, ConnectFailed), match="remote session might have ended"):
        pool.get(parse_target(url(sim, "stopped1")))


def test_unknown_option_is_refused(sim: HyperVSim, pool: SessionPool) -> None:
    with pytest.raises(TargetSpecError, match="unknown option"):
        pool.get(parse_target(url(sim, CID) + "&route=native"))


def test_container_id_option_through_pytest(pytester: pytest.Pytester, sim: HyperVSim) -> None:
    pytester.makepyfile("""
        def test_who(target):
            assert target.url.startswith("container://")
            assert target.run_ps("# guest:whoami").output[0]["UserName"] == "ContainerAdministrator"
    """)
    result = pytester.runpytest("--container-id", CID, "--run-as-administrator",
                                "--hyperv-host", sim.host_url)
    result.assert_outcomes(passed=1)
    refused = pytester.runpytest("--vm-name", "web01", "--run-as-administrator",
                                 "--hyperv-host", sim.host_url)
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(["*Parameter set cannot be resolved*RunAsAdministrator*"])
