"""Fixtures of the Hyper-V acceptance gate: ``ps`` runs one gate script in the VM and returns its
output objects; a script that errors fails the check with the guest's own message."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pytest_psdirect import TargetSession

Runner = Callable[..., list[Any]]


@pytest.fixture
def ps(target: TargetSession) -> Runner:
    """``ps(SCRIPT, **params)``: the script's output objects (check=True: a guest error fails)."""

    def run(script: str, **params: Any) -> list[Any]:
        __tracebackhide__ = True
        return list(target.run_ps(script, check=True, **params).output)

    return run
