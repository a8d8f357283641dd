"""Replaying pypsrp's recorded WinRM exchanges (real Windows servers) to our WSMan engine.

pypsrp's sdist ships ``tests/tests_pypsrp/responses/*.yml``: each a list of request/response
pairs captured from a real server, with UUIDs blanked. :func:`fetch_pypsrp_sdist` downloads the
sdist at test time (never committed); :class:`Replay` stands in for ``WSMan.transport`` (as
pypsrp's own ``TransportFake`` does): each request we send must be the WSMan action the
recording has next (Create, Receive, Command, Send, Signal, Delete), and gets the recorded
response, recorded HTTP errors and faults included. Our requests' *contents* differ from
pypsrp's (our scripts, our parameters), so they are kept in ``sent`` for tests to inspect
rather than compared byte for byte.

One liberty: our engine releases every finished pipeline with a TERMINATE signal (as
``PowerShell.close()`` does); where a recording has none, the reply is a real SignalResponse
taken from another recording (``test_psrp_multiple_invocations``).
"""

from __future__ import annotations

import base64
import importlib.util
import os
import re
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml
from pypsrp.exceptions import AuthenticationError, WinRMTransportError

PYPSRP_SDIST = "pypsrp==0.9.1"
ZERO_UUID = "00000000-0000-0000-0000-000000000000"
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
_ACTION = re.compile(rb"<(?:\w+:)?Action[^>]*>([^<]+)</")
TERMINATE = b"/signal/Terminate"


def fetch_pypsrp_sdist(dest: Path) -> Path:
    """Download and unpack pypsrp's sdist into ``dest``; return its ``tests/tests_pypsrp``.

    ``PSDIRECT_PYPSRP_SDIST=/path/pypsrp-0.9.1.tar.gz`` uses a tarball already at hand.
    Raises RuntimeError saying why when it cannot.
    """
    tarball = os.environ.get("PSDIRECT_PYPSRP_SDIST")
    if not tarball:
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary",
                               ":all:", "--disable-pip-version-check", "-q", PYPSRP_SDIST,
                               "-d", str(dest)], capture_output=True, text=True, timeout=180)
        found = sorted(dest.glob("pypsrp-*.tar.gz"))
        if proc.returncode != 0 or not found:
            raise RuntimeError(f"pip download {PYPSRP_SDIST} failed (rc {proc.returncode}): "
                               f"{proc.stderr.strip()[-400:]}")
        tarball = str(found[0])
    with tarfile.open(tarball) as tar:
        members = [m for m in tar.getmembers() if "/tests/tests_pypsrp/" in m.name
                   and (m.name.endswith(".yml") or m.name.endswith("test_powershell.py"))]
        tar.extractall(dest, members=members, filter="data")
    roots = list(dest.glob("pypsrp-*/tests/tests_pypsrp"))
    if not roots or not list(roots[0].glob("responses/*.yml")):
        raise RuntimeError(f"{tarball} holds no tests/tests_pypsrp/responses/*.yml")
    return roots[0]


def load_messages(root: Path, name: str) -> list[dict[str, Any]]:
    """The recorded request/response pairs of ``responses/<name>.yml``."""
    with open(root / "responses" / f"{name}.yml", "rb") as f:
        messages: list[dict[str, Any]] = yaml.safe_load(f)["messages"]
    return messages


def fixed_rsa_key_module(root: Path) -> ModuleType:
    """pypsrp's test module, for ``gen_rsa_keypair``: the fixed RSA key whose public half the
    recorded server encrypted its session key with (so key exchange replays)."""
    spec = importlib.util.spec_from_file_location("pypsrp_recorded_tests", root / "test_powershell.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def action(xml: bytes | str) -> str:
    """The last segment of a WSMan message's wsa:Action (``Create``, ``Receive``...)."""
    data = xml.encode() if isinstance(xml, str) else xml
    match = _ACTION.search(data)
    assert match, f"no wsa:Action in {data[:200]!r}"
    return match.group(1).decode().rsplit("/", 1)[-1]


def blank_uuids(xml: str) -> str:
    return _UUID.sub(ZERO_UUID, xml)


class Replay:
    """A ``WSMan.transport`` that answers from recorded messages, in order.

    Use with ``uuid.uuid4`` patched to return the zero UUID (the recordings' UUIDs are
    blanked, and WSMan checks that each response relates to the message id it sent).
    """

    def __init__(self, messages: list[dict[str, Any]], signal_response: str | None = None,
                 name: str = "replay") -> None:
        self.messages = messages
        self.signal_response = signal_response
        self.name = name
        self.index = 0
        self.sent: list[bytes] = []
        self.actions: list[str] = []
        self.read_timeout = 30  # the engine shortens this around signals and deletes
        self.endpoint = "http://fakehost:5985/wsman"

    def close(self) -> None:
        pass

    def send(self, message: bytes, **_: Any) -> bytes:
        sent = action(message)
        self.sent.append(message)
        self.actions.append(sent)
        if self.index >= len(self.messages):
            raise AssertionError(f"{self.name}: request {len(self.sent)} ({sent}) is past the end "
                                 f"of the recording ({len(self.messages)} messages)")
        recorded = self.messages[self.index]
        expected = action(recorded["request"])
        if sent != expected:
            if sent == "Signal" and TERMINATE in message and self.signal_response:
                return blank_uuids(self.signal_response).encode()
            raise AssertionError(f"{self.name}: request {len(self.sent)} is {sent}, the recording "
                                 f"has {expected} (message {self.index})")
        self.index += 1
        response = blank_uuids(recorded["response"] or "")
        if "transport_error" in recorded:
            error = recorded["transport_error"]
            raise WinRMTransportError(error["protocol"], error["code"], response)
        if recorded.get("auth_error"):
            raise AuthenticationError("Failed to authenticate the user username with negotiate")
        return response.encode()

    @property
    def finished(self) -> bool:
        return self.index == len(self.messages)


def zero_uuid() -> uuid.UUID:
    return uuid.UUID(ZERO_UUID)


def command_arguments(message: bytes) -> bytes:
    """The PSRP fragment bytes a Command request carries (CreatePipeline with our script and
    parameters), base64-decoded."""
    match = re.search(rb"<(?:\w+:)?Arguments>([^<]+)</", message)
    assert match, "no rsp:Arguments in the Command request"
    return base64.b64decode(match.group(1))
