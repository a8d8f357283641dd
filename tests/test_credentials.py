"""Credentials: secrets never print or pickle; sources are checked and errors say how to fix."""

from __future__ import annotations

import logging
import pickle
import sys
import types
from pathlib import Path

import pytest

from pytest_psdirect import Credential, CredentialError, Secret, parse_target
from pytest_psdirect.credentials.providers import can_prompt, from_env, from_file, resolve_reference
from pytest_psdirect.credentials.secret import MASK, mask, register_secret_env, scrubbed_environ
from pytest_psdirect.lab.sshlab import SSHLab
from pytest_psdirect.plugin.credentials import FallbackProviders
from pytest_psdirect.plugin.redact import MaskingFilter

PW = "Sup3r-S3cret-value"


def test_secret_never_shows(caplog: pytest.LogCaptureFixture) -> None:
    cred = Credential("admin", Secret(PW))
    logging.getLogger("t").warning("cred %s %r %s", cred, cred, cred.secret)
    text = f"{cred} {cred!r} {cred.secret} {cred.secret!r} {cred.secret:>30}" + caplog.text
    assert PW not in text
    assert cred.secret.reveal() == PW
    assert cred.secret == Secret(PW) and cred.secret != Secret("other")


@pytest.mark.parametrize("obj", [Secret(PW), Credential("a", Secret(PW))])
def test_secrets_refuse_pickling(obj: object) -> None:
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(obj)


def test_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATE_USERNAME", "svc")
    monkeypatch.setenv("GATE_PASSWORD", PW)
    cred = from_env("GATE")
    assert (cred.username, cred.secret.reveal(), cred.source) == ("svc", PW, "env:GATE")
    monkeypatch.delenv("GATE_PASSWORD")
    with pytest.raises(CredentialError, match="GATE_PASSWORD not set"):
        from_env("GATE")


def test_file_must_be_private(tmp_path: Path) -> None:
    path = tmp_path / "creds.toml"
    path.write_text(f'[web]\nusername = "admin"\npassword = "{PW}"\n')
    path.chmod(0o644)
    with pytest.raises(CredentialError, match="readable by group or others") as info:
        from_file(path, "web")
    assert "chmod 600" in str(info.value)
    path.chmod(0o600)
    assert from_file(path, "web").secret.reveal() == PW
    with pytest.raises(CredentialError, match=r"no \[db\] table"):
        from_file(path, "db")
    assert resolve_reference(f"file:{path}#web", tmp_path) == from_file(path, "web")


def test_bad_reference() -> None:
    with pytest.raises(CredentialError, match="unknown credential reference"):
        resolve_reference("vault:x", Path())


def test_no_prompt_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    assert not can_prompt()


KEYRING_PROBE = """
import sys
def pytest_sessionfinish(session):
    with open("keyring-imported.txt", "w") as fh:
        fh.write(str("keyring" in sys.modules))
"""


def test_keyring_untouched_for_local(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(KEYRING_PROBE)
    pytester.makepyfile("def test_x(target): assert target.run('true').rc == 0")
    result = pytester.runpytest_subprocess("--hosts", "local://")
    result.assert_outcomes(passed=1)
    assert (pytester.path / "keyring-imported.txt").read_text() == "False"


def test_keyring_untouched_for_key_based_ssh(pytester: pytest.Pytester, ssh_lab: SSHLab,
                                              lab_urls: list[str]) -> None:
    pytester.makeconftest(KEYRING_PROBE)
    pytester.makepyfile("def test_x(target): assert target.run('true').rc == 0")
    result = pytester.runpytest_subprocess("--hosts", lab_urls[0], "--ssh-key", str(ssh_lab.key_file),
                                           "--ssh-known-hosts", str(ssh_lab.known_hosts))
    result.assert_outcomes(passed=1)
    assert (pytester.path / "keyring-imported.txt").read_text() == "False"


class _FakeKeyring(types.ModuleType):
    def __init__(self) -> None:
        super().__init__("keyring")
        self.calls: list[tuple[str, str | None]] = []
        self.errors = types.SimpleNamespace(KeyringError=RuntimeError)

    def get_credential(self, service: str, username: str | None) -> object:
        self.calls.append((service, username))
        return types.SimpleNamespace(username="kr-user", password=PW)


def test_keyring_only_when_required(monkeypatch: pytest.MonkeyPatch,
                                    pytestconfig: pytest.Config) -> None:
    fake = _FakeKeyring()
    monkeypatch.setitem(sys.modules, "keyring", fake)
    monkeypatch.setitem(sys.modules, "keyring.errors", fake.errors)
    provider, target = FallbackProviders(), parse_target("ssh://web01")
    assert provider.pytest_psdirect_credential(target, pytestconfig, required=False) is None
    assert fake.calls == []
    cred = provider.pytest_psdirect_credential(target, pytestconfig, required=True)
    assert cred is not None and (cred.username, cred.secret.reveal()) == ("kr-user", PW)
    assert fake.calls == [("pytest-psdirect/web01", None)]


def test_every_secret_registers_and_is_masked() -> None:
    Secret("qq-short")
    Secret("qq-short-but-longer")
    Secret("")  # empty secrets never register (nothing to mask)
    assert mask("a qq-short-but-longer b qq-short c") == f"a {MASK} b {MASK} c"
    Secret('quo"te\\back')
    assert mask(repr({"pw": 'quo"te\\back'})) == f"{{'pw': '{MASK}'}}"
    assert mask("nothing here") == "nothing here"


def test_scrubbed_environ_drops_names_and_values() -> None:
    register_secret_env("SCRUB_PASSWORD")
    Secret("scrub-me-7781")
    env = {"SCRUB_PASSWORD": "not-read-yet", "OTHER": "x-scrub-me-7781-y", "PATH": "/bin"}
    assert scrubbed_environ(env) == {"PATH": "/bin"}


def test_masking_filter_masks_message_args_and_traceback() -> None:
    Secret("filter-secret-99")
    try:
        raise ValueError("bad filter-secret-99")
    except ValueError:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "login %s", ("filter-secret-99",),
                                   sys.exc_info())
    assert MaskingFilter().filter(record)
    text = logging.Formatter().format(record)
    assert "filter-secret-99" not in text and text.count(MASK) == 3  # message, source line, error
