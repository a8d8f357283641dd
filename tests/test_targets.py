"""Target URLs and inventories: good ones parse to canonical URLs, bad ones name the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_psdirect import TargetSpecError, TransportRegistry, parse_target
from pytest_psdirect.inventory import load_inventory
from pytest_psdirect.targets import check_scheme


@pytest.mark.parametrize(("spec", "url"), [
    ("local://", "local://"),
    ("local://localhost", "local://"),
    ("admin@web01", "ssh://admin@web01"),
    ("ssh://admin@10.0.0.5:2222?timeout=5&key=/k", "ssh://admin@10.0.0.5:2222?key=/k&timeout=5"),
    ("SSH://h", "ssh://h"),
    ("ssh://[::1]:22", "ssh://[::1]:22"),
])
def test_canonical_url(spec: str, url: str) -> None:
    assert parse_target(spec).url == url


@pytest.mark.parametrize(("spec", "message"), [
    ("", "empty target"),
    ("1ftp://h", "malformed scheme '' in target '1ftp://h'"),
    ("ssh://", "no valid host name"),
    ("ssh://a b", "no valid host name"),
    ("ssh://h:99999", "malformed target"),
    ("ssh://h:port", "malformed target"),
    ("local://elsewhere", "names a host"),
])
def test_bad_specs_name_the_value(spec: str, message: str) -> None:
    with pytest.raises(TargetSpecError, match=message):
        parse_target(spec)


@pytest.mark.parametrize("spec", ["ssh://admin:Hunter2pw@h", "ssh://h?password=Hunter2pw"])
def test_secrets_in_urls_are_refused_and_not_echoed(spec: str) -> None:
    with pytest.raises(TargetSpecError) as info:
        parse_target(spec)
    assert "Hunter2pw" not in str(info.value)
    assert "--credential-env" in str(info.value)


def test_unknown_schemes_parse_and_are_refused_by_the_registry() -> None:
    """A plugin may register any scheme, so parsing accepts it; the registry check names it."""
    assert parse_target("myproto://h").scheme == "myproto"
    with pytest.raises(TargetSpecError, match=r"unknown scheme 'ftp'.*use one of: .*local, .*ssh.*winrm\)$"):
        check_scheme(parse_target("ftp://h"), TransportRegistry().schemes())
    check_scheme(parse_target("qemu://vm1"), TransportRegistry().schemes())  # landed
    check_scheme(parse_target("ssh://h"), TransportRegistry().schemes())


def test_inventory(tmp_path: Path) -> None:
    (tmp_path / "id").write_text("key")
    (tmp_path / "fleet.toml").write_text(
        '[defaults]\nssh_key = "id"\nconnect_timeout = 3\n'
        '[targets.web]\nurl = "ssh://a@web"\ncredential = "file:creds.toml#web"\ntags = ["w"]\n'
        '[targets.me]\nurl = "local://"\n')
    inv = load_inventory(tmp_path / "fleet.toml")
    web, me = inv.targets
    assert (web.name, web.url, web.tags) == ("web", "ssh://a@web", frozenset({"w"}))
    assert web.credential_ref == f"file:{tmp_path / 'creds.toml'}#web"
    assert me.credential_ref is None
    assert inv.defaults == {"ssh_key": str(tmp_path / "id"), "connect_timeout": 3.0}


@pytest.mark.parametrize(("text", "message"), [
    ('[targets.a]\nurl = "ssh://h"\ncolour = 1\n', r"\[targets.a\]: unknown key\(s\) \['colour'\]"),
    ('[targets.a]\nurl = "1ftp://h"\n', r"\[targets.a\]: malformed scheme"),
    ('[targets.a]\ntags = ["x"]\n', "has no url"),
    ('[targets.a]\nurl = "ssh://h"\ncredential = {password = "x"}\n', "string reference"),
    ("[defaults]\nssh_kye = 'x'\n[targets.a]\nurl='local://'\n", "bad \\[defaults\\] key"),
    ("[targets]\n", "no \\[targets.NAME\\] entries"),
    ("not toml [", "not valid TOML"),
])
def test_bad_inventory(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "inv.toml"
    path.write_text(text)
    with pytest.raises(TargetSpecError, match=message):
        load_inventory(path)


def test_missing_inventory_file(tmp_path: Path) -> None:
    with pytest.raises(TargetSpecError, match="cannot read inventory"):
        load_inventory(tmp_path / "nope.toml")
