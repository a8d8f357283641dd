"""vm:// / vmid:// URLs and the --vm-name/--vm-id/--hyperv-host options."""

from __future__ import annotations

import pytest
from hyperv_sim.sim import HOSTILE_NAME

from pytest_psdirect.errors import RunAsAdministratorNotForVMs, TargetSpecError
from pytest_psdirect.targets import parse_target
from pytest_psdirect.transports.psdirect import hyperv_host_target, vm_ref

GUID = "4f2c8d1a-0000-4000-8000-00000000abcd"


@pytest.mark.parametrize("name", ["web01", "my vm", HOSTILE_NAME, "a,b?c#d&e=f%g/h@i:j", "vé"])
def test_vm_names_round_trip_through_the_canonical_url(name: str) -> None:
    from urllib.parse import quote

    target = parse_target(f"vm://{quote(name, safe='')}?host=winrm://hv01")
    assert target.vm_name == name and vm_ref(target).name == name
    again = parse_target(target.url)
    assert again == target and again.vm_name == name
    assert target.option("host") == "winrm://hv01"


def test_vm_url_with_plain_characters() -> None:
    target = parse_target("vm://web01")
    assert (target.scheme, target.vm_name, target.url) == ("vm", "web01", "vm://web01")


def test_host_option_with_its_own_query_survives() -> None:
    target = parse_target("vm://web01?host=pwsh%3A%2F%2F%3Fexe%3D%2Fopt%2Fa%26b")
    assert target.option("host") == "pwsh://?exe=/opt/a&b"
    assert parse_target(target.url).option("host") == "pwsh://?exe=/opt/a&b"


@pytest.mark.parametrize("spec", [GUID, GUID.upper(), "{" + GUID + "}"])
def test_vmid_is_canonical(spec: str) -> None:
    target = parse_target(f"vmid://{spec}")
    assert target.url == f"vmid://{GUID}" and vm_ref(target).id == GUID


@pytest.mark.parametrize(("spec", "message"), [
    ("vmid://web01", "is not a VM id"),
    ("vmid://4f2c8d1a-0000-4000-8000", "is not a VM id"),
    ("vm://", "no valid VM name"),
    ("vm://a%00b", "no valid VM name"),
    ("vm://%ff", "not valid UTF-8"),
    ("vm://web01?colour=blue", "unknown option 'colour'"),
])
def test_bad_vm_targets(spec: str, message: str) -> None:
    with pytest.raises(TargetSpecError, match=message):
        parse_target(spec)


def test_run_as_administrator_is_refused_for_vms_with_the_documented_message() -> None:
    with pytest.raises(RunAsAdministratorNotForVMs, match="Parameter set cannot be resolved") as info:
        parse_target("vm://web01?RunAsAdministrator=1")
    assert "no implicit administrator" in str(info.value)


@pytest.mark.parametrize(("spec", "url"), [
    (None, "pwsh://"), ("hv01", "winrm://hv01"), ("admin@hv01", "winrm://admin@hv01"),
    ("winrm://hv01?ssl=1", "winrm://hv01?ssl=1"), ("pwsh+ssh://a@hv01", "pwsh+ssh://a@hv01"),
])
def test_hyperv_host(spec: str | None, url: str) -> None:
    assert hyperv_host_target(spec).url == url


def test_hyperv_host_must_speak_powershell() -> None:
    with pytest.raises(TargetSpecError, match="ssh:// target"):
        hyperv_host_target("ssh://hv01")


def test_no_hyperv_host_and_no_local_powershell_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_psdirect import Settings
    from pytest_psdirect.credentials.secret import Credential, Secret
    from pytest_psdirect.errors import ConnectFailed
    from pytest_psdirect.pool import SessionPool
    from pytest_psdirect.transports import TransportRegistry

    monkeypatch.setenv("PATH", "/nonexistent")
    pool = SessionPool(TransportRegistry(), Settings(connect_timeout=5),
                       lambda t, r: Credential("Administrator", Secret("x-123")))
    with pytest.raises(ConnectFailed, match="no Hyper-V host named") as info:
        pool.get(parse_target("vm://web01"))
    assert "--hyperv-host HOST" in str(info.value)


def test_native_route_says_why_it_cannot_run_here() -> None:
    """On Linux (or Python < 3.12) ?route=native names the reason and the nested alternative;
    auto quietly takes the nested route."""
    from pytest_psdirect import Settings, TransportUnavailable, parse_target
    from pytest_psdirect.credentials.secret import Credential, Secret
    from pytest_psdirect.transports.psdirect import PSDirectTransport

    cred = Credential("Administrator", Secret("native-route-test-9f1c"))
    native = PSDirectTransport(parse_target("vmid://4f2c8d1a-0000-4000-8000-000000000001"
                                            "?route=native"), cred, Settings())
    with pytest.raises(TransportUnavailable, match="native PowerShell Direct needs Windows") as e:
        native._native_engine()
    assert "--hyperv-host" in str(e.value)
    auto = PSDirectTransport(parse_target("vmid://4f2c8d1a-0000-4000-8000-000000000001"), cred,
                             Settings())
    assert auto._native_engine() is None
