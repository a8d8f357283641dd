"""Unit tests: psrpcore objects -> PSResult values, parameters -> psrpcore, OutOfProc framing."""

from __future__ import annotations

import uuid

import pytest
from psrpcore.types import (
    ErrorCategory,
    ErrorCategoryInfo,
    NETException,
    PSCredential,
    PSCustomObject,
    PSInt,
    PSObject,
    PSSecureString,
    PSString,
    add_note_property,
)
from psrpcore.types import ErrorRecord as PSErrorRecord

from pytest_psdirect import Credential, Secret
from pytest_psdirect.powershell import PSObjectDict
from pytest_psdirect.powershell import convert_psrpcore as conv
from pytest_psdirect.powershell.oopframing import (
    FramingError,
    PacketParser,
    data_packet,
    guid_packet,
    parse_line,
)


def test_primitives_become_plain_values() -> None:
    values = [conv.to_python(v) for v in (PSString("a"), PSInt(3), True, None, 1.5, b"\x01")]
    assert values == ["a", 3, True, None, 1.5, b"\x01"]
    assert [type(v) for v in values[:2]] == [str, int]


def test_objects_keep_type_names_without_deserialized_prefix() -> None:
    obj = PSObject()
    obj.PSObject.type_names = ["Deserialized.System.IO.FileInfo", "Deserialized.System.Object"]
    obj.PSObject.to_string = "C:\\x.txt"
    add_note_property(obj, "Length", PSInt(10))
    add_note_property(obj, "Tags", [PSString("a")])
    result = conv.to_python(obj)
    assert isinstance(result, PSObjectDict) and result == {"Length": 10, "Tags": ["a"]}
    assert result.type_names == ("System.IO.FileInfo", "System.Object")
    assert result.to_string == "C:\\x.txt"


def test_enum_becomes_its_name() -> None:
    status = PSObject()
    status.PSObject.type_names = ["Deserialized.System.ServiceProcess.ServiceControllerStatus",
                                  "System.Enum", "System.ValueType", "System.Object"]
    status.PSObject.to_string = "Running"
    assert conv.to_python(status) == "Running"
    assert conv.to_python(ErrorCategory.ObjectNotFound) == "ObjectNotFound"


def test_dicts_lists_and_custom_objects_nest() -> None:
    value = {PSString("k"): [PSCustomObject(A=PSInt(1))]}
    out = conv.to_python(value)
    assert out == {"k": [{"A": 1}]}
    assert out["k"][0].type_names[0] == "System.Management.Automation.PSCustomObject"


def test_error_record_fields() -> None:
    exc = NETException(Message="denied")
    exc.PSObject.type_names = ["System.UnauthorizedAccessException", "System.Exception"]
    record = PSErrorRecord(Exception=exc, TargetObject=PSString("C:\\x"),
                           CategoryInfo=ErrorCategoryInfo(Category=ErrorCategory.PermissionDenied),
                           FullyQualifiedErrorId="Denied,X")
    err = conv.error_record(record)
    assert (err.message, err.category, err.fully_qualified_error_id, err.target_object,
            err.exception_type) == ("denied", "PermissionDenied", "Denied,X", "C:\\x",
                                    "System.UnauthorizedAccessException")


def test_credential_becomes_pscredential_with_securestring() -> None:
    cred = Credential("alice", Secret("pw-unit"))
    ps = conv.to_ps({"c": [cred]})["c"][0]
    assert isinstance(ps, PSCredential) and ps.UserName == "alice"
    assert isinstance(ps.Password, PSSecureString) and "pw-unit" not in repr(ps)
    assert conv.needs_session_key(("x", {"k": cred})) and not conv.needs_session_key(["x"])
    assert isinstance(conv.to_ps(Secret("unit-secret-2")), PSSecureString)


def test_securestring_output_stays_secret() -> None:
    value = conv.to_python(PSSecureString("hidden-out"))
    assert isinstance(value, Secret) and value.reveal() == "hidden-out"
    assert "hidden-out" not in repr(value)


def test_framing_round_trip_and_partial_lines() -> None:
    guid = uuid.uuid4()
    stream = data_packet(b"\x00" * 100, guid) + guid_packet("CommandAck", guid)
    parser = PacketParser()
    packets = [*parser.feed(stream[:37]), *parser.feed(stream[37:])]
    assert [(p.tag, p.guid) for p in packets] == [("Data", guid), ("CommandAck", guid)]
    assert packets[0].data == b"\x00" * 100
    assert parse_line(b"<Data Stream='PromptResponse' PSGuid='00000000-0000-0000-0000-"
                      b"000000000000'></Data>\r").stream == "PromptResponse"


@pytest.mark.parametrize("line", [b"pwsh: command not found", b"<Foo PSGuid='x' />",
                                  b"<DataAck PSGuid='00000000-0000-0000-0000-000000000000'>AA==</Data>"])
def test_framing_rejects_what_is_not_psrp(line: bytes) -> None:
    with pytest.raises(FramingError):
        list(PacketParser().feed(line + b"\n"))
