"""PowerShell Direct's Hyper-V socket handshake, sans-IO (no sockets in here).

Follows PowerShell's ``RemoteSessionHyperVSocket.cs`` (``RemoteSessionHyperVSocketClient``).
Two connections to the VM:

1. the **broker** (vmicvmsession, service ``999e53d4-3d5c-4c3e-8779-bed06ec056e1``)::

       -> VERSION                    <- VERSION_2 (any "VERSION_..." reply; recv buffer 16)
       -> VERSION_2                  <- PASS (4)
       -> domain (UTF-16LE)          <- PASS (4)      ("localhost" when the user has none)
       -> user (UTF-16LE)            <- PASS (4)
       -> EMPTYPW                    <- CONF | PASS | FAIL (4)
          or NONEMPTYPW <- PASS, then password (UTF-16LE) <- CONF | PASS | FAIL (4)
       FAIL -> FAIL, then "The credential is invalid."
       CONF -> EMPTYCF, or NONEMPTYCF <- PASS, then configuration name (UTF-16LE)
       PASS -> PASS
       <- TOKEN <t> (recv buffer 1024)  -> PASS

   A *legacy* guest (before the VERSION exchange) answers ``VERSION`` with ``PASS`` (it took it
   as the domain): the client finishes that conversation with a probe user
   ``?<PSDirectVMLegacy>`` (UTF-16LE) and ``EMPTYPW``, answers ``FAIL``, reconnects and runs the
   exchange without ``VERSION`` and without ``TOKEN``.

2. the **server** (the PowerShell process the broker started, ``a5201c21-2770-4c11-a68e-
   f182edb29220``)::

       -> VERSION      <- VERSION_... (16)
       -> VERSION_2    <- PASS (4)
       -> TOKEN <t>    <- PASS (256)          otherwise "The credential is invalid."

   then OutOfProc PSRP on the same socket. Legacy guests go straight to OutOfProc.

Commands are UTF-8 (ASCII), user data UTF-16LE, replies are decoded as ASCII with trailing NULs
removed. There is no framing: each message is one ``send``, each reply one ``recv`` of at most the
buffer size above, as PowerShell does. The machines here return :class:`Event` lists; the IO side
(``transports/hvsocket_io.py``) sends, receives and raises in that order.

Where PowerShell ignores a reply ("only PASS is expected"), this client insists on ``PASS`` so a
broken broker fails at the step that broke, with the step named. Passwords and tokens never
appear in reprs, logs or messages.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field

from ..credentials.secret import Secret
from ..errors import AuthenticationFailed, ConnectFailed, PSDirectError

log = logging.getLogger(__name__)

BROKER_SERVICE_ID = "999e53d4-3d5c-4c3e-8779-bed06ec056e1"  # HV_GUID_VM_SESSION_SERVICE_ID
SERVER_SERVICE_ID = "a5201c21-2770-4c11-a68e-f182edb29220"  # HV_GUID_VM_SESSION_SERVICE_ID_2

VERSION_REQUEST = b"VERSION"
CLIENT_VERSION = b"VERSION_2"
VERSION_PREFIX = "VERSION_"
LEGACY_PROBE_USER = "?<PSDirectVMLegacy>"  # '?', '<', '>' cannot be in a real user name

#: PowerShell's receive buffer sizes (bytes) for each reply.
VERSION_REPLY_MAX = 16
STATUS_REPLY_MAX = 4
TOKEN_REPLY_MAX = 1024
TOKEN_ACK_MAX = 256

#: RemotingErrorIdStrings (PowerShell's resources), as PowerShell words them.
INVALID_CREDENTIAL = "The credential is invalid."
INVALID_USERNAME = "The input username cannot be empty."

CREDENTIAL_HINT = ("check the user name and password of the guest's account (a local account as "
                   "DOMAIN\\user or .\\user; PowerShell Direct has no implicit admin)")
BROKER_HINT = ("is the VM running and its guest booted? A hung guest service is fixed with "
               "'Restart-Service vmicvmsession' inside the guest (or restart the VM)")


class HandshakeError(ConnectFailed):
    """The broker or the server answered something the PowerShell Direct protocol does not allow."""

    default_hint = BROKER_HINT


class LegacyRefused(HandshakeError):
    """The guest speaks only the legacy protocol and ``allow_legacy`` is off."""

    default_hint = ("the guest's PowerShell Direct service predates the VERSION/TOKEN exchange; "
                    "update the guest, or allow legacy guests")


# --- events -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Send:
    """Send ``data`` as one message. ``what`` names it for logs; secret data has a redacted repr."""

    data: bytes = field(repr=False)
    what: str

    def __repr__(self) -> str:
        return f"Send({self.what}, {len(self.data)} bytes)"


@dataclass(frozen=True)
class Receive:
    """Read one reply of at most ``max_bytes`` (one ``recv``; ``exact``: until that many)."""

    max_bytes: int
    what: str
    exact: bool = False


@dataclass(frozen=True)
class Fail:
    """Raise ``error`` (after sending what came before it)."""

    error: PSDirectError


@dataclass(frozen=True)
class Reconnect:
    """Legacy guest: close this connection and run a new :class:`BrokerClient` with ``legacy=True``."""


@dataclass(frozen=True)
class Done:
    """The exchange is over; ``token`` is what the broker gave (None for legacy guests)."""

    token: Secret | None = None


Event = Send | Receive | Fail | Reconnect | Done


def decode_reply(data: bytes) -> str:
    """PowerShell's ReceiveResponse: ASCII, trailing NULs removed.

    >>> decode_reply(b"PASS\\x00\\x00")
    'PASS'
    """
    return data.decode("ascii", "replace").rstrip("\0")


def shown(reply: str) -> str:
    """A reply as it may appear in a message: quoted and cut to 40 characters."""
    return repr(reply if len(reply) <= 40 else reply[:40] + "...")


def split_user(username: str) -> tuple[str, str]:
    """``DOMAIN\\user`` -> ("DOMAIN", "user"); anything else keeps the name with domain "localhost".

    As ``PSCredential.GetNetworkCredential()``: only a backslash splits; ``user@domain`` is sent as
    is. An empty domain becomes "localhost", as PowerShell sends it.

    >>> split_user("WEB01\\\\admin"), split_user("admin"), split_user("admin@corp.example")
    (('WEB01', 'admin'), ('localhost', 'admin'), ('localhost', 'admin@corp.example'))
    """
    domain, sep, user = username.partition("\\")
    if not sep:
        domain, user = "", username
    return (domain or "localhost"), user


def utf16(text: str) -> bytes:
    return text.encode("utf-16-le")


class _State(enum.Enum):
    VERSION = "version"
    VERSION_ACK = "version-ack"
    DOMAIN = "domain"
    USER = "user"
    PASSWORD_KIND = "password-kind"
    PASSWORD = "password"
    CONFIG_KIND = "config-kind"
    TOKEN = "token"
    PROBE_USER = "probe-user"
    PROBE_PASSWORD = "probe-password"
    DONE = "done"


class BrokerClient:
    """The first connection: credentials (and configuration name) for the broker, then its token.

    ``username`` may be ``DOMAIN\\user``; ``password`` is a :class:`Secret`, revealed only into
    the one message that carries it. ``legacy=True`` is the exchange for guests without VERSION.

    >>> b = BrokerClient("admin", Secret(""))
    >>> b.start()
    [Send(VERSION, 7 bytes), Receive(max_bytes=16, what='version', exact=False)]
    """

    def __init__(self, username: str, password: Secret, *, configuration_name: str | None = None,
                 legacy: bool = False, allow_legacy: bool = True, target: str | None = None) -> None:
        self.domain, self.user = split_user(username)
        self._password = password
        self.configuration_name = configuration_name or None
        self.legacy = legacy
        self.allow_legacy = allow_legacy
        self.target = target
        self._state: _State | None = None

    def __repr__(self) -> str:
        return (f"BrokerClient(domain={self.domain!r}, user={self.user!r}, password=Secret("
                f"'********'), legacy={self.legacy}, state={self._state and self._state.value})")

    # --- helpers ---------------------------------------------------------------------------
    def _error(self, message: str, cls: type[HandshakeError] = HandshakeError) -> Fail:
        self._state = _State.DONE
        return Fail(cls(message, target=self.target))

    def _status(self, what: str) -> Receive:
        return Receive(STATUS_REPLY_MAX, what, exact=True)

    def _expect_pass(self, reply: str, step: str) -> Fail | None:
        if reply == "PASS":
            return None
        return self._error(f"the PowerShell Direct broker answered {shown(reply)} to the {step} "
                           "(expected 'PASS')")

    def _credentials(self) -> list[Event]:
        self._state = _State.DOMAIN
        return [Send(utf16(self.domain), "domain"), self._status("domain reply")]

    # --- machine ---------------------------------------------------------------------------
    def start(self) -> list[Event]:
        """The first events; raises :class:`HandshakeError` for an empty user name."""
        if self._state is not None:
            raise RuntimeError("BrokerClient.start() called twice")
        if not self.user:
            self._state = _State.DONE
            return [Fail(AuthenticationFailed(INVALID_USERNAME, target=self.target,
                                              hint=CREDENTIAL_HINT))]
        if self.legacy:
            return self._credentials()
        self._state = _State.VERSION
        return [Send(VERSION_REQUEST, "VERSION"), Receive(VERSION_REPLY_MAX, "version")]

    def receive(self, data: bytes) -> list[Event]:
        """One reply (what one ``recv`` returned; ``b""`` is the broker closing the connection)."""
        state = self._state
        if state is None or state is _State.DONE:
            raise RuntimeError(f"BrokerClient.receive() in state {state}")
        if not data:
            return [self._error(f"the PowerShell Direct broker closed the connection (waiting for "
                                f"the {state.value} reply)")]
        reply = decode_reply(data)
        return getattr(self, f"_on_{state.name.lower()}")(reply)  # type: ignore[no-any-return]

    def _on_version(self, reply: str) -> list[Event]:
        if reply.startswith(VERSION_PREFIX):
            log.debug("hvsocket broker: guest speaks %s", reply)
            self._state = _State.VERSION_ACK
            return [Send(CLIENT_VERSION, "VERSION_2"), self._status("version ack")]
        if not self.allow_legacy:
            return [self._error("the guest's PowerShell Direct broker does not support the "
                                f"VERSION exchange (it answered {shown(reply)})", LegacyRefused)]
        log.debug("hvsocket broker: legacy guest (answered %s to VERSION); probing", shown(reply))
        self._state = _State.PROBE_USER
        return [Send(utf16(LEGACY_PROBE_USER), "probe user"), self._status("probe user reply")]

    def _on_version_ack(self, reply: str) -> list[Event]:
        if fail := self._expect_pass(reply, "VERSION_2 message"):
            return [fail]
        return self._credentials()

    def _on_domain(self, reply: str) -> list[Event]:
        if fail := self._expect_pass(reply, "domain"):
            return [fail]
        self._state = _State.USER
        return [Send(utf16(self.user), "user"), self._status("user reply")]

    def _on_user(self, reply: str) -> list[Event]:
        if fail := self._expect_pass(reply, "user name"):
            return [fail]
        if self._password.reveal() == "":
            self._state = _State.PASSWORD
            return [Send(b"EMPTYPW", "EMPTYPW"), self._status("credential reply")]
        self._state = _State.PASSWORD_KIND
        return [Send(b"NONEMPTYPW", "NONEMPTYPW"), self._status("NONEMPTYPW reply")]

    def _on_password_kind(self, reply: str) -> list[Event]:
        if fail := self._expect_pass(reply, "NONEMPTYPW message"):
            return [fail]
        self._state = _State.PASSWORD
        return [Send(utf16(self._password.reveal()), "password"), self._status("credential reply")]

    def _on_password(self, reply: str) -> list[Event]:
        if reply == "FAIL":
            self._state = _State.DONE
            return [Send(b"FAIL", "FAIL"),
                    Fail(AuthenticationFailed(INVALID_CREDENTIAL, target=self.target,
                                              hint=CREDENTIAL_HINT))]
        if reply == "CONF":
            events: list[Event]
            if self.configuration_name is None:
                events = [Send(b"EMPTYCF", "EMPTYCF")]
            else:
                self._state = _State.CONFIG_KIND
                return [Send(b"NONEMPTYCF", "NONEMPTYCF"), self._status("NONEMPTYCF reply")]
        elif reply == "PASS":
            events = [Send(b"PASS", "PASS")]
        else:
            return [self._error(f"the PowerShell Direct broker answered {shown(reply)} to the "
                                "credential (expected 'CONF', 'PASS' or 'FAIL')")]
        return events + self._after_credentials()

    def _on_config_kind(self, reply: str) -> list[Event]:
        if fail := self._expect_pass(reply, "NONEMPTYCF message"):
            return [fail]
        assert self.configuration_name is not None
        return [Send(utf16(self.configuration_name), "configuration name"),
                *self._after_credentials()]

    def _after_credentials(self) -> list[Event]:
        if self.legacy:
            self._state = _State.DONE
            return [Done(None)]
        self._state = _State.TOKEN
        return [Receive(TOKEN_REPLY_MAX, "token")]

    def _on_token(self, reply: str) -> list[Event]:
        if not reply.startswith("TOKEN ") or len(reply) == len("TOKEN "):
            # the reply is not a token: safe to show (cut), it helps to see what came instead
            return [self._error(f"the PowerShell Direct broker did not send a token (it answered "
                                f"{shown(reply) if not reply.startswith('TOKEN') else 'TOKEN ...'})")]
        self._state = _State.DONE
        return [Send(b"PASS", "PASS"), Done(Secret(reply[len("TOKEN "):]))]

    def _on_probe_user(self, reply: str) -> list[Event]:
        self._state = _State.PROBE_PASSWORD
        return [Send(b"EMPTYPW", "EMPTYPW"), self._status("probe credential reply")]

    def _on_probe_password(self, reply: str) -> list[Event]:
        self._state = _State.DONE
        return [Send(b"FAIL", "FAIL"), Reconnect()]


class _ServerState(enum.Enum):
    VERSION = "version"
    VERSION_ACK = "version ack"
    TOKEN_ACK = "token ack"
    DONE = "done"


class ServerClient:
    """The second connection: VERSION, VERSION_2, TOKEN, each answered, then OutOfProc PSRP.

    ``token=None`` (a legacy guest) has nothing to exchange: :meth:`start` returns ``[Done()]``.

    >>> ServerClient(None).start()
    [Done(token=None)]
    """

    def __init__(self, token: Secret | None, *, target: str | None = None) -> None:
        self._token = token
        self.target = target
        self._state: _ServerState | None = None

    def __repr__(self) -> str:
        return f"ServerClient(token={'None' if self._token is None else 'Secret(...)'})"

    def _error(self, message: str, cls: type[ConnectFailed] = HandshakeError,
               hint: str | None = None) -> list[Event]:
        self._state = _ServerState.DONE
        return [Fail(cls(message, target=self.target, hint=hint))]

    def start(self) -> list[Event]:
        if self._state is not None:
            raise RuntimeError("ServerClient.start() called twice")
        if self._token is None:
            self._state = _ServerState.DONE
            return [Done(None)]
        if not self._token.reveal():
            return self._error(INVALID_CREDENTIAL + " (the broker's token is empty)",
                               AuthenticationFailed, CREDENTIAL_HINT)
        self._state = _ServerState.VERSION
        return [Send(VERSION_REQUEST, "VERSION"), Receive(VERSION_REPLY_MAX, "server version")]

    def receive(self, data: bytes) -> list[Event]:
        state = self._state
        if state is None or state is _ServerState.DONE:
            raise RuntimeError(f"ServerClient.receive() in state {state}")
        if not data:
            return self._error("the PowerShell Direct server in the guest closed the connection "
                               f"(waiting for the {state.value} reply)")
        reply = decode_reply(data)
        if state is _ServerState.VERSION:
            if not reply.startswith(VERSION_PREFIX):
                return self._error(f"the PowerShell Direct server answered {shown(reply)} to "
                                   "VERSION (expected 'VERSION_...')")
            self._state = _ServerState.VERSION_ACK
            return [Send(CLIENT_VERSION, "VERSION_2"),
                    Receive(STATUS_REPLY_MAX, "server version ack", exact=True)]
        if state is _ServerState.VERSION_ACK:
            if reply != "PASS":
                return self._error(f"the PowerShell Direct server answered {shown(reply)} to "
                                   "VERSION_2 (expected 'PASS')")
            self._state = _ServerState.TOKEN_ACK
            assert self._token is not None
            return [Send(b"TOKEN " + self._token.reveal().encode("utf-8"), "TOKEN"),
                    Receive(TOKEN_ACK_MAX, "token ack")]
        if reply != "PASS":
            return self._error(f"{INVALID_CREDENTIAL} (the guest's PowerShell server refused "
                               f"the broker's token: {shown(reply)})", AuthenticationFailed,
                               "the token is valid for 10 minutes and one connection; reconnect "
                               "through the broker")
        self._state = _ServerState.DONE
        return [Done(self._token)]
