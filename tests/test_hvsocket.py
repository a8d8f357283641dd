"""The PowerShell Direct handshake machines, byte by byte, without sockets."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_psdirect import Secret
from pytest_psdirect.errors import AuthenticationFailed, ConnectFailed
from pytest_psdirect.powershell import hvsocket as hv
from pytest_psdirect.powershell.hvsocket import (
    BrokerClient,
    Done,
    Fail,
    Receive,
    Reconnect,
    Send,
    ServerClient,
)

PASSWORD = "S3cr3t-Pässwörd"


def sends(events):
    return [e.data for e in events if isinstance(e, Send)]


def last(events):
    return events[-1]


def run(machine, replies):
    """Feed ``replies`` in order; return (every byte string sent, the final event)."""
    sent: list[bytes] = []
    events = machine.start()
    for reply in replies:
        sent += sends(events)
        assert isinstance(last(events), Receive), events
        events = machine.receive(reply)
    sent += sends(events)
    return sent, last(events)


def test_version2_nonempty_password_conf_empty_config_token():
    broker = BrokerClient("WEB01\\admin", Secret(PASSWORD))
    sent, outcome = run(broker, [b"VERSION_2", b"PASS", b"PASS", b"PASS", b"PASS", b"CONF",
                                 b"TOKEN abc123=="])
    assert sent == [
        b"VERSION",
        b"VERSION_2",
        "WEB01".encode("utf-16-le"),
        b"a\x00d\x00m\x00i\x00n\x00",  # user name, UTF-16LE
        b"NONEMPTYPW",
        PASSWORD.encode("utf-16-le"),
        b"EMPTYCF",
        b"PASS",  # acknowledges the token
    ]
    assert isinstance(outcome, Done) and outcome.token is not None
    assert outcome.token.reveal() == "abc123=="


def test_receive_buffer_sizes_follow_powershell():
    broker = BrokerClient("admin", Secret(""))
    first = broker.start()
    assert first[-1] == Receive(16, "version")
    ev = broker.receive(b"VERSION_2")
    assert ev[-1].max_bytes == 4 and ev[-1].exact
    for reply in (b"PASS", b"PASS", b"PASS"):
        ev = broker.receive(reply)
    ev = broker.receive(b"PASS")  # the credential reply: PASS (no configuration support)
    assert sends(ev) == [b"PASS"] and ev[-1] == Receive(1024, "token")


def test_empty_password_sends_emptypw_and_domain_defaults_to_localhost():
    sent, outcome = run(BrokerClient("admin", Secret("")),
                        [b"VERSION_2", b"PASS", b"PASS", b"PASS", b"PASS", b"TOKEN tk-4f1d"])
    assert sent == [b"VERSION", b"VERSION_2", b"l\x00o\x00c\x00a\x00l\x00h\x00o\x00s\x00t\x00",
                    "admin".encode("utf-16-le"), b"EMPTYPW", b"PASS", b"PASS"]
    assert isinstance(outcome, Done) and outcome.token.reveal() == "tk-4f1d"


def test_user_at_domain_is_sent_whole_non_ascii_user_is_utf16():
    sent, _ = run(BrokerClient("Jürgen@corp.example", Secret("Xq-7731")),
                  [b"VERSION_2", b"PASS", b"PASS", b"PASS", b"PASS", b"PASS", b"TOKEN tk-4f1d"])
    assert sent[2] == "localhost".encode("utf-16-le")
    assert sent[3] == (b"J\x00\xfc\x00r\x00g\x00e\x00n\x00@\x00c\x00o\x00r\x00p\x00.\x00"
                       b"e\x00x\x00a\x00m\x00p\x00l\x00e\x00")


def test_conf_with_configuration_name():
    broker = BrokerClient("admin", Secret("Pw-5512"), configuration_name="JEA.Maintenance")
    sent, outcome = run(broker, [b"VERSION_2", b"PASS", b"PASS", b"PASS", b"PASS", b"CONF",
                                 b"PASS", b"TOKEN tk-9a2c"])
    assert sent[-4:] == ["Pw-5512".encode("utf-16-le"), b"NONEMPTYCF",
                         "JEA.Maintenance".encode("utf-16-le"), b"PASS"]
    assert outcome.token.reveal() == "tk-9a2c"


def test_fail_answers_fail_then_raises_the_documented_message():
    broker = BrokerClient("admin", Secret("Wrong-pw-1"))
    sent, outcome = run(broker, [b"VERSION_2", b"PASS", b"PASS", b"PASS", b"PASS", b"FAIL"])
    assert sent[-1] == b"FAIL"
    assert isinstance(outcome, Fail) and isinstance(outcome.error, AuthenticationFailed)
    assert outcome.error.message == "The credential is invalid."
    assert "user name and password" in outcome.error.hint
    assert "Wrong-pw-1" not in str(outcome.error) and "Wrong-pw-1" not in repr(outcome)


def test_empty_user_name_is_refused_before_any_byte():
    events = BrokerClient("DOM\\", Secret("Xq-7731")).start()
    assert events == [events[0]] and isinstance(events[0], Fail)
    assert events[0].error.message == "The input username cannot be empty."


def test_legacy_guest_probe_then_reconnect_then_legacy_exchange():
    broker = BrokerClient("admin", Secret("Pw-5512"))
    sent, outcome = run(broker, [b"PASS", b"PASS", b"FAIL"])
    assert sent == [b"VERSION", "?<PSDirectVMLegacy>".encode("utf-16-le"), b"EMPTYPW", b"FAIL"]
    assert isinstance(outcome, Reconnect)
    legacy = BrokerClient("admin", Secret("Pw-5512"), legacy=True)
    sent, outcome = run(legacy, [b"PASS", b"PASS", b"PASS", b"PASS"])
    assert sent == ["localhost".encode("utf-16-le"), "admin".encode("utf-16-le"), b"NONEMPTYPW",
                    "Pw-5512".encode("utf-16-le"), b"PASS"]
    assert outcome == Done(None)
    assert ServerClient(None).start() == [Done(None)]


def test_legacy_guest_refused_when_not_allowed():
    broker = BrokerClient("admin", Secret("Pw-5512"), allow_legacy=False)
    broker.start()
    (fail,) = broker.receive(b"PASS")
    assert isinstance(fail, Fail) and isinstance(fail.error, hv.LegacyRefused)


@pytest.mark.parametrize(("replies", "words"), [
    ([b"VERSION_2", b"FAIL"], "'FAIL' to the VERSION_2 message"),
    ([b"VERSION_2", b"PASS", b"NOPE"], "'NOPE' to the domain"),
    ([b"VERSION_2", b"PASS", b"PASS", b"PAS"], "'PAS' to the user name"),
    ([b"VERSION_2", b"PASS", b"PASS", b"PASS", b"FAIL"], "'FAIL' to the NONEMPTYPW message"),
    ([b"VERSION_2", b"PASS", b"PASS", b"PASS", b"PASS", b"OKAY"], "expected 'CONF', 'PASS' or 'FAIL'"),
    ([b"VERSION_2", b"PASS", b"PASS", b"PASS", b"PASS", b"PASS", b"HELLO"], "did not send a token"),
    ([b"VERSION_2", b"PASS", b"PASS", b"PASS", b"PASS", b"PASS", b"TOKEN "], "did not send a token"),
    ([b"VERSION_2", b"PASS", b"PASS", b"PASS", b"PASS", b"PASS", b""], "closed the connection"),
    ([b""], "closed the connection (waiting for the version reply)"),
])
def test_malformed_broker_replies_are_named(replies, words):
    _, outcome = run(BrokerClient("admin", Secret("Pw-5512")), replies)
    assert isinstance(outcome, Fail) and isinstance(outcome.error, ConnectFailed)
    assert words in outcome.error.message
    assert "Pw-5512" not in outcome.error.message


def test_trailing_nuls_are_trimmed_and_long_replies_cut():
    assert hv.decode_reply(b"PASS\x00") == "PASS"
    broker = BrokerClient("admin", Secret(""))
    broker.start()
    broker.allow_legacy = False
    (fail,) = broker.receive(b"X" * 100)
    assert "..." in fail.error.message and "X" * 41 not in fail.error.message


def test_server_exchange_bytes():
    server = ServerClient(Secret("tok-123"))
    sent, outcome = run(server, [b"VERSION_2", b"PASS", b"PASS"])
    assert sent == [b"VERSION", b"VERSION_2", b"TOKEN tok-123"]
    assert isinstance(outcome, Done)
    events = ServerClient(Secret("tk-77e0")).start()
    assert events[-1] == Receive(16, "server version")


@pytest.mark.parametrize(("replies", "cls", "words"), [
    ([b"PASS"], ConnectFailed, "'PASS' to VERSION"),
    ([b"VERSION_2", b"FAIL"], ConnectFailed, "'FAIL' to VERSION_2"),
    ([b"VERSION_2", b"PASS", b"FAIL"], AuthenticationFailed, "The credential is invalid."),
    ([b"VERSION_2", b""], ConnectFailed, "closed the connection"),
])
def test_server_failures(replies, cls, words):
    _, outcome = run(ServerClient(Secret("tk-0b3e")), replies)
    assert isinstance(outcome, Fail) and isinstance(outcome.error, cls)
    assert words in outcome.error.message


def test_secrets_never_in_reprs_or_logs(caplog):
    caplog.set_level(logging.DEBUG)
    broker = BrokerClient("admin", Secret(PASSWORD))
    _, outcome = run(broker, [b"VERSION_2", b"PASS", b"PASS", b"PASS", b"PASS", b"PASS",
                              b"TOKEN tok-SECRET"])
    assert PASSWORD not in repr(broker)
    pw_send = Send(PASSWORD.encode("utf-16-le"), "password")
    assert PASSWORD not in repr(pw_send) and "password" in repr(pw_send)
    assert "tok-SECRET" not in repr(outcome) and "tok-SECRET" not in repr(ServerClient(outcome.token))
    assert "guest speaks VERSION_2" in caplog.text  # it did log, without the secrets
    assert PASSWORD not in caplog.text and "tok-SECRET" not in caplog.text


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=40), min_size=1, max_size=12), st.booleans(), st.booleans())
def test_any_broker_replies_end_in_an_outcome_or_a_clear_error(replies, legacy, empty_pw):
    broker = BrokerClient("admin", Secret("" if empty_pw else "Fz-Pa55-31"), legacy=legacy,
                          configuration_name="cfg")
    events = broker.start()
    for reply in replies:
        if not isinstance(events[-1], Receive):
            break
        assert all(isinstance(e, Send) for e in events[:-1])
        events = broker.receive(reply)
    outcome = events[-1]
    assert isinstance(outcome, Receive | Done | Reconnect | Fail)
    if isinstance(outcome, Fail):
        assert isinstance(outcome.error, ConnectFailed) and outcome.error.message
        assert "Fz-Pa55-31" not in str(outcome.error)
    if isinstance(outcome, Done) and not legacy:
        assert outcome.token is not None and outcome.token.reveal()


def test_module_examples():
    import doctest

    result = doctest.testmod(hv)
    assert result.attempted >= 4 and result.failed == 0
