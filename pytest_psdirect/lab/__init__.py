"""A local lab of real hosts to try the plugin and to test it: ``sshlab`` (sshd in network namespaces)."""

from __future__ import annotations

from ..errors import PSDirectError


class LabError(PSDirectError):
    """The lab could not be built, found or removed on this machine."""
