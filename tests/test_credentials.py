"""Credentials: secrets never print or pickle; sources are checked and errors say how to fix."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import pytest

from pytest_psdirect import Credential, CredentialError, Secret
from pytest_psdirect.credentials.providers import can_prompt, from_env, from_file, resolve_reference

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
