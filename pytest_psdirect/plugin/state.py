"""Keys of what the plugin keeps in ``config.stash``, shared by its modules."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from ..sessions import SessionPool
from ..settings import Settings
from ..transports import TransportRegistry
from .options import Selection

REGISTRY = pytest.StashKey[TransportRegistry]()
SELECTION = pytest.StashKey[Selection]()
SETTINGS = pytest.StashKey[Settings]()
POOL = pytest.StashKey[SessionPool]()


@dataclass(frozen=True)
class NoTarget:
    """Parameter used when a test asks for ``target`` but none is configured."""

    reason: str
