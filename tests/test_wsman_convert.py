"""pypsrp objects -> our values (the conversion the WSMan engine applies to every result)."""

from __future__ import annotations

from pypsrp.complex_objects import ErrorRecord as PypsrpErrorRecord
from pypsrp.complex_objects import GenericComplexObject

from pytest_psdirect.powershell import PSObjectDict
from pytest_psdirect.powershell.wsman_convert import ERROR_CATEGORIES, error_record, to_python


def obj(types: list[str], adapted: dict | None = None, extended: dict | None = None,
        to_string: str | None = None, sets: list | None = None) -> GenericComplexObject:
    o = GenericComplexObject()
    o.types, o.to_string = types, to_string
    o.adapted_properties, o.extended_properties = adapted or {}, extended or {}
    o.property_sets = sets or []
    return o


def test_primitives_lists_and_hashtables_pass_through() -> None:
    assert to_python([1, "a", None, True, 2.5, b"\x00"]) == [1, "a", None, True, 2.5, b"\x00"]
    assert to_python({"k": [1, {"n": "v"}]}) == {"k": [1, {"n": "v"}]}


def test_psobject_keeps_properties_in_order_and_type_names() -> None:
    value = to_python(obj(["Deserialized.System.IO.FileInfo", "System.Object"],
                          adapted={"Name": "a.txt", "Length": 3}, extended={"PSPath": "C:\\a.txt"},
                          to_string="C:\\a.txt"))
    assert isinstance(value, PSObjectDict)
    assert list(value.items()) == [("Name", "a.txt"), ("Length", 3), ("PSPath", "C:\\a.txt")]
    assert value.type_names == ("System.IO.FileInfo", "System.Object")  # prefix dropped
    assert value.to_string == "C:\\a.txt"


def test_wrapped_primitive_and_enum() -> None:
    assert to_python(obj(["System.String", "System.Object"], sets=["text"])) == "text"
    status = obj(["System.ServiceProcess.ServiceControllerStatus", "System.Enum", "System.Object"],
                 to_string="Stopped", sets=[1])
    assert to_python(status) == "Stopped"


def test_error_record_fields() -> None:
    exception = obj(["System.Management.Automation.ItemNotFoundException", "System.Exception"],
                    adapted={"Message": "Cannot find path 'C:\\x' because it does not exist."})
    record = PypsrpErrorRecord(fq_error="PathNotFound,Microsoft.PowerShell.Commands.GetItemCommand",
                               category=ERROR_CATEGORIES.index("ObjectNotFound"))
    record.exception, record.target_object = exception, "C:\\x"
    record.invocation_position_message = "At line:1 char:1\n+ Get-Item C:\\x"
    err = error_record(record)
    assert err.message == "Cannot find path 'C:\\x' because it does not exist."
    assert err.category == "ObjectNotFound"
    assert err.fully_qualified_error_id.startswith("PathNotFound,")
    assert err.target_object == "C:\\x"
    assert err.script_position.startswith("At line:1")
    assert err.exception_type == "System.Management.Automation.ItemNotFoundException"
    assert error_record(PypsrpErrorRecord(category=99)).category == "99"


def test_cyclic_references_stop() -> None:
    a = obj(["X"], adapted={})
    a.adapted_properties["self"] = a
    value = to_python(a)
    depth = 0
    while isinstance(value, dict):
        value, depth = value["self"], depth + 1
    assert depth > 10 and isinstance(value, str)
