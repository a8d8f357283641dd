"""Keys of what the plugin keeps in ``config.stash``, shared by its modules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

import pytest

from ..errors import PSDirectError
from ..pool import SessionPool
from ..settings import Settings
from ..transports import TransportRegistry
from .options import Selection

REGISTRY = pytest.StashKey[TransportRegistry]()
SELECTION = pytest.StashKey[Selection]()
SETTINGS = pytest.StashKey[Settings]()
POOL = pytest.StashKey[SessionPool]()


def fail_with(exc: PSDirectError) -> NoReturn:
    """Fail the current set-up/test with the plugin's one-line reason (``Class: target: ...``),
    no traceback and no chained context (call it inside the ``except`` block)."""
    raise pytest.fail.Exception(f"{type(exc).__name__}: {exc}", pytrace=False) from None


@dataclass(frozen=True)
class NoTarget:
    """Parameter used when a test asks for ``target`` but none is configured."""

    reason: str
