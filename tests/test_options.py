"""Timeouts, output caps, paths and target names: every bad value is refused before collection,
naming the value and where it came from (option, ini key, inventory, URL, marker)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from pytest_psdirect import Settings, TargetSpecError, validate_timeout
from pytest_psdirect.inventory import load_inventory
from pytest_psdirect.settings import MAX_TIMEOUT, parse_size

BAD_TIMEOUTS = ["nan", "inf", "-inf", "-1", "0", "1e10", "1e309", "ten", ""]


@pytest.mark.parametrize("value", [*BAD_TIMEOUTS, math.nan, math.inf, 0, -0.5, True, None, [1]])
def test_validate_timeout_refuses(value: object) -> None:
    with pytest.raises(ValueError, match=r"^where=") as info:
        validate_timeout(value, "where")
    assert repr(value) in str(info.value)


@pytest.mark.parametrize(("value", "seconds"), [("2.5", 2.5), (10, 10.0), ("1e-3", 0.001),
                                                (MAX_TIMEOUT, MAX_TIMEOUT), (" 7 ", 7.0)])
def test_validate_timeout_accepts(value: object, seconds: float) -> None:
    assert validate_timeout(value, "t") == seconds


def test_settings_validate_themselves() -> None:
    with pytest.raises(ValueError, match="command_timeout=nan"):
        Settings(command_timeout=math.nan)
    with pytest.raises(ValueError, match="max_output=0"):
        Settings(max_output=0)
    assert Settings(connect_timeout=3).connect_timeout == 3.0


@pytest.mark.parametrize(("text", "size"), [("1048576", 1048576), ("256M", 256 * 2**20),
                                            ("1G", 2**30), ("64k", 65536), ("2MiB", 2 * 2**20),
                                            ("3 GB", 3 * 2**30)])
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["0", "-1", "1.5G", "lots", "", "1P", "2T", "256 M B"])
def test_parse_size_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="--psdirect-max-output="):
        parse_size(text, "--psdirect-max-output")


@pytest.mark.parametrize(("args", "message"), [
    (["--psdirect-connect-timeout", "nan"], "*--psdirect-connect-timeout='nan' must be a finite*"),
    (["--psdirect-command-timeout", "inf"], "*--psdirect-command-timeout='inf' must be a finite*"),
    (["--psdirect-command-timeout", "1e10"], "*'1e10' is more than 604800 seconds (7 days)*"),
    (["--psdirect-connect-timeout", "0"], "*'0' must be more than 0 seconds*"),
    (["--psdirect-max-output", "lots"], "*--psdirect-max-output='lots' is not a size*"),
    (["--hosts", "ssh://h?timeout=nan"], "*ssh://h?timeout=nan: ?timeout='nan' must be a finite*"),
    (["--hosts", "ssh://h?timeout=-3"], "*?timeout='-3' must be more than 0 seconds*"),
    (["--ssh-known-hosts", "/no/known_hosts"], "*--ssh-known-hosts /no/known_hosts: no such file*"),
    (["--ssh-config", "/no/config"], "*--ssh-config /no/config: no such file*"),
    (["--hosts", "ftp://x"], "*unknown scheme 'ftp' in target 'ftp://x' (hint: use one of: *local, *ssh*)*"),
    (["--hosts", "qemu://x?bogus=1"], "*unknown option 'bogus'*qemu:// takes connect, dir, qga, timeout*"),
])
def test_bad_values_are_usage_errors(pytester: pytest.Pytester, args: list[str],
                                     message: str) -> None:
    pytester.makepyfile("def test_x(target): pass")
    result = pytester.runpytest("--hosts", "local://", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "collected" not in result.stdout.str()


@pytest.mark.parametrize(("ini", "message"), [
    ("psdirect_connect_timeout = nan", "*ini psdirect_connect_timeout='nan' must be a finite*"),
    ("psdirect_command_timeout = -5", "*ini psdirect_command_timeout='-5' must be more than 0*"),
    ("psdirect_max_output = 12X", "*ini psdirect_max_output='12X' is not a size*"),
])
def test_bad_ini_values_are_usage_errors(pytester: pytest.Pytester, ini: str,
                                         message: str) -> None:
    pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile("def test_x(target): pass")
    result = pytester.runpytest("--hosts", "local://")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_good_values_reach_the_settings(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\npsdirect_max_output = 1G\npsdirect_command_timeout = 42\n")
    pytester.makeconftest(
        "from pytest_psdirect.plugin.state import SETTINGS\n"
        "def test_settings(pytestconfig):\n"
        "    s = pytestconfig.stash[SETTINGS]\n"
        "    assert (s.max_output, s.command_timeout, s.connect_timeout) == (2**30, 42.0, 2.5)\n")
    pytester.makepyfile("from conftest import test_settings")
    result = pytester.runpytest("--hosts", "local://", "--psdirect-connect-timeout", "2.5")
    result.assert_outcomes(passed=1)
    result = pytester.runpytest("--hosts", "local://", "--psdirect-max-output", "256M")
    result.assert_outcomes(failed=1)  # the command line wins over the ini key
    result.stdout.fnmatch_lines(["*268435456*"])


@pytest.mark.parametrize(("defaults", "message"), [
    ("connect_timeout = nan", r"\[defaults\] connect_timeout: connect_timeout=nan must be a finite"),
    ("command_timeout = -1", r"\[defaults\] command_timeout: command_timeout=-1 must be more than 0"),
    ("command_timeout = 1e10", "more than 604800 seconds"),
    ('command_timeout = "5"', r"\[defaults\] command_timeout must be a number of seconds"),
    ('ssh_key = "keys/nope"', r"\[defaults\] ssh_key = 'keys/nope': no such file"),
    ('known_hosts = "kh"', r"\[defaults\] known_hosts = 'kh': no such file"),
])
def test_bad_inventory_defaults_name_the_inventory(tmp_path: Path, defaults: str,
                                                   message: str) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text(f'[defaults]\n{defaults}\n[targets.a]\nurl = "local://"\n')
    with pytest.raises(TargetSpecError, match=message) as info:
        load_inventory(path)
    assert str(path) in str(info.value)


def test_inventory_errors_are_usage_errors(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", fleet='[defaults]\nssh_key = "gone"\n[targets.a]\nurl = "local://"\n')
    pytester.makepyfile("def test_x(target): pass")
    result = pytester.runpytest("--inventory", "fleet.toml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*inventory fleet.toml: [[]defaults] ssh_key = 'gone': no such file*"])


def test_inventory_url_timeout_names_the_entry(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", fleet='[targets.web]\nurl = "ssh://h?timeout=inf"\n')
    pytester.makepyfile("def test_x(target): pass")
    result = pytester.runpytest("--inventory", "fleet.toml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*inventory target 'web': ssh://h?timeout=inf: ?timeout='inf'*"])
