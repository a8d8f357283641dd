"""Fixtures of the Linux baseline: the sshd settings of each target, read once per target."""

from __future__ import annotations

import pytest
from sshd_config import sshd_settings

from pytest_psdirect import TargetSession


@pytest.fixture(scope="session")
def sshd(target: TargetSession) -> dict[str, str]:
    if target.run("test -f /etc/ssh/sshd_config").rc != 0:
        pytest.skip(f"{target.url}: sshd is not installed")
    return sshd_settings(target)
