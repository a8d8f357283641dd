"""Invoke-Command-style WinRM options -> winrm:// targets; bad values are usage errors."""

from __future__ import annotations

import pytest

from pytest_psdirect.errors import TargetSpecError
from pytest_psdirect.powershell.wsman_options import computer_name_url, connection_uri_url, parse_winrm
from pytest_psdirect.targets import parse_target


@pytest.mark.parametrize(("uri", "url", "endpoint"), [
    ("https://srv01:5986/wsman", "winrm://srv01:5986?ssl=1", "https://srv01:5986/wsman"),
    ("http://srv01/wsman", "winrm://srv01", "http://srv01:5985/wsman"),
    ("https://srv01:8443/custom", "winrm://srv01:8443/custom?ssl=1", "https://srv01:8443/custom"),
])
def test_connection_uri(uri: str, url: str, endpoint: str) -> None:
    assert connection_uri_url(uri) == url
    assert parse_winrm(parse_target(url)).endpoint == endpoint


def test_computer_name_with_every_option() -> None:
    url = computer_name_url("admin@srv01", port=5999, ssl=True, auth="ntlm",
                            configuration_name="JEARole", insecure=True)
    assert url == "winrm://admin@srv01:5999?auth=ntlm&cert_validation=0&configuration_name=JEARole&ssl=1"
    opts = parse_winrm(parse_target(url))
    assert (opts.port, opts.ssl, opts.auth, opts.cert_validation, opts.configuration_name) == (
        5999, True, "ntlm", False, "JEARole")


def test_bad_uri_and_name() -> None:
    with pytest.raises(TargetSpecError, match="not an http"):
        connection_uri_url("ftp://srv01")
    with pytest.raises(TargetSpecError, match="not a host name"):
        computer_name_url("srv01/x")


def test_options_build_targets(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_t(target):\n    pass\n")
    result = pytester.runpytest("--collect-only", "-q", "--computer-name", "srv01,srv02",
                                "--computer-name", "srv03", "--winrm-ssl", "--winrm-auth", "Kerberos",
                                "--connection-uri", "https://srv04:5986/wsman",
                                "--configuration-name", "JEARole")
    result.stdout.fnmatch_lines([
        "*test_t[[]winrm://srv01?auth=kerberos&configuration_name=JEARole&ssl=1]",
        "*test_t[[]winrm://srv02?auth=kerberos&configuration_name=JEARole&ssl=1]",
        "*test_t[[]winrm://srv03?auth=kerberos&configuration_name=JEARole&ssl=1]",
        "*test_t[[]winrm://srv04:5986?auth=kerberos&configuration_name=JEARole&ssl=1]",
    ])


@pytest.mark.parametrize(("args", "message"), [
    (["--winrm-auth", "digest"], "*--winrm-auth='digest' is not one of basic*"),
    (["--winrm-port", "70000", "--computer-name", "a"], "*--winrm-port='70000' is not a port*"),
    (["--connection-uri", "srv01"], "*--connection-uri 'srv01' is not an http(s) URI*"),
    (["--hosts", "winrm://h?auth=basic"], "*auth=basic over http sends everything in clear text*"),
])
def test_bad_winrm_options_are_usage_errors(pytester: pytest.Pytester, args: list[str],
                                            message: str) -> None:
    pytester.makepyfile("def test_t(target):\n    pass\n")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
