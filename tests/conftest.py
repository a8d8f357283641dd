"""Shared fixtures: the real SSH lab (sshd hosts in network namespaces), built once per run."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from pytest_psdirect import Credential, Secret, Settings
from pytest_psdirect.credentials.providers import from_file
from pytest_psdirect.lab.sshlab import SSHLab, missing_facilities

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def ssh_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHLab]:
    """Three real sshd hosts (lab1 hardened, lab2/lab3 weak) on a free 10.N.0.0/24."""
    why = missing_facilities()
    if why:
        if IN_CI:
            pytest.fail(f"CI must run the SSH lab, but {why}", pytrace=False)
        pytest.skip(why)
    lab = SSHLab(tmp_path_factory.mktemp("lab"), hosts=3,
                 user=os.environ.get("PSDIRECT_LAB_USER", "psdtest"),
                 subnet=os.environ.get("PSDIRECT_LAB_SUBNET"))  # e.g. "10.210.0"; default: free
    lab.up()
    yield lab
    lab.down()


@pytest.fixture(scope="session")
def lab_settings(ssh_lab: SSHLab) -> Settings:
    return Settings(ssh_key=str(ssh_lab.key_file), known_hosts=str(ssh_lab.known_hosts),
                    connect_timeout=5, command_timeout=30)


@pytest.fixture(scope="session")
def lab_password(ssh_lab: SSHLab) -> Credential:
    return from_file(ssh_lab.credentials_file, "lab")


@pytest.fixture
def lab_urls(ssh_lab: SSHLab) -> list[str]:
    assert ssh_lab.state is not None
    return [h.url for h in ssh_lab.state.hosts]


def wrong_credential() -> Credential:
    return Credential("psdtest", Secret("definitely-not-the-password-7f3a"))

