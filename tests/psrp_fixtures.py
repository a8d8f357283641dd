"""Helpers shared by the PowerShell tests: the test PSRP server as a ``pwsh://?exe=`` program."""

from __future__ import annotations

import sys
from pathlib import Path

SERVER = Path(__file__).with_name("psrp_server.py")


def server_wrapper(directory: Path) -> Path:
    """A ``pwsh`` look-alike: an executable that runs tests/psrp_server.py with its arguments."""
    exe = directory / "fake-pwsh"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{SERVER}" "$@"\n')
    exe.chmod(0o755)
    return exe
