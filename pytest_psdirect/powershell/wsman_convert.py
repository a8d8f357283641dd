"""pypsrp's deserialized objects -> our plain values (:class:`PSResult` and what it holds).

pypsrp turns CLIXML into primitives, lists, dicts (hashtables), ``GenericComplexObject`` (any
PSObject: ``types``, ``adapted_properties``, ``extended_properties``, ``to_string``) and typed
records (ErrorRecord, Debug/Verbose/Warning/Information/Progress records). Tests read none of
those: PSObjects become :class:`PSObjectDict` (properties in order, type names kept), enums the
name PowerShell prints (``"Running"``), an object that only wraps a primitive that primitive.

Example::

    >>> from pypsrp.complex_objects import GenericComplexObject
    >>> svc = GenericComplexObject()
    >>> svc.types = ["System.ServiceProcess.ServiceController", "System.Object"]
    >>> status = GenericComplexObject()
    >>> status.types = ["System.ServiceProcess.ServiceControllerStatus", "System.Enum", "System.Object"]
    >>> status.to_string, status.property_sets = "Running", [4]
    >>> svc.adapted_properties = {"Name": "W3SVC", "Status": status}
    >>> value = to_python(svc)
    >>> value, value["Status"]
    (<System.ServiceProcess.ServiceController {'Name': 'W3SVC', 'Status': 'Running'}>, 'Running')
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pypsrp.complex_objects import ComplexObject, GenericComplexObject
from pypsrp.complex_objects import ErrorRecord as PypsrpErrorRecord

from .result import ErrorRecord, ProgressRecord, PSObjectDict, PSResult

#: System.Management.Automation.ErrorCategory, by value (what ErrorCategory_Category carries).
ERROR_CATEGORIES = (
    "NotSpecified", "OpenError", "CloseError", "DeviceError", "DeadlockDetected", "InvalidArgument",
    "InvalidData", "InvalidOperation", "InvalidResult", "InvalidType", "MetadataError",
    "NotImplemented", "NotInstalled", "ObjectNotFound", "OperationStopped", "OperationTimeout",
    "SyntaxError", "ParserError", "PermissionDenied", "ResourceBusy", "ResourceExists",
    "ResourceUnavailable", "ReadError", "WriteError", "FromStdErr", "SecurityError",
    "ProtocolError", "ConnectionError", "AuthenticationError", "LimitsExceeded", "QuotaExceeded",
    "NotEnabled",
)
_MAX_DEPTH = 64  # CLIXML nests to depth 2 by default; cycles come from <Ref>: stop somewhere


def _type_names(types: Iterable[str]) -> tuple[str, ...]:
    """PSTypeNames without the ``Deserialized.`` prefix PowerShell adds on its side."""
    return tuple(t[len("Deserialized."):] if t.startswith("Deserialized.") else t for t in types)


def to_python(value: Any, _depth: int = 0) -> Any:
    """One output object (or property value) as a plain Python value."""
    if _depth > _MAX_DEPTH:
        return str(value)
    if isinstance(value, list | tuple):
        return [to_python(v, _depth + 1) for v in value]
    if isinstance(value, dict):
        return {k: to_python(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, GenericComplexObject):
        return _generic(value, _depth)
    if isinstance(value, PypsrpErrorRecord):
        return error_record(value)
    if isinstance(value, ComplexObject):  # a typed pypsrp object (PSCredential, Color...)
        return PSObjectDict(type_names=_type_names(value._types), to_string=str(value))
    return value


def _generic(obj: GenericComplexObject, depth: int) -> Any:
    names = _type_names(obj.types)
    if "System.Enum" in names and obj.to_string is not None:
        return str(obj.to_string)
    properties = {**obj.adapted_properties, **obj.extended_properties}
    if not properties and len(obj.property_sets) == 1:  # a primitive or collection in a PSObject
        return to_python(obj.property_sets[0], depth + 1)
    if not properties and obj.property_sets:
        return [to_python(v, depth + 1) for v in obj.property_sets]
    return PSObjectDict(((k, to_python(v, depth + 1)) for k, v in properties.items()),
                        type_names=names, to_string=obj.to_string)


def _prop(obj: Any, name: str) -> Any:
    if isinstance(obj, GenericComplexObject):
        return obj.adapted_properties.get(name, obj.extended_properties.get(name))
    return None


def error_record(record: PypsrpErrorRecord) -> ErrorRecord:
    """An ErrorRecord's message, category name, FullyQualifiedErrorId, target object, position
    and exception type."""
    exception = getattr(record, "exception", None)
    message = (getattr(record, "details_message", None) or _prop(exception, "Message")
               or str(record) or getattr(record, "message", None) or "")
    category = getattr(record, "category", None)
    category_name = (ERROR_CATEGORIES[category]
                     if isinstance(category, int) and 0 <= category < len(ERROR_CATEGORIES)
                     else str(category) if category is not None else "NotSpecified")
    position = (getattr(record, "invocation_position_message", None)
                or _prop(getattr(record, "invocation_info", None), "PositionMessage")
                or getattr(record, "script_stacktrace", None) or "")
    exception_type = ""
    if isinstance(exception, GenericComplexObject) and exception.types:
        exception_type = _type_names(exception.types)[0]
    return ErrorRecord(message=str(message), category=category_name,
                       fully_qualified_error_id=str(getattr(record, "fq_error", None) or ""),
                       target_object=to_python(getattr(record, "target_object", None)),
                       script_position=str(position), exception_type=exception_type)


def progress_record(record: Any) -> ProgressRecord:
    """A PROGRESS_RECORD message (``Write-Progress``)."""
    percent = getattr(record, "percent_complete", None)
    return ProgressRecord(activity=str(getattr(record, "activity", None) or ""),
                          status=str(getattr(record, "description", None) or ""),
                          percent_complete=percent if isinstance(percent, int) else -1,
                          activity_id=int(getattr(record, "activity_id", None) or 0))


def _text(record: Any) -> str:
    return str(getattr(record, "message", None) or "")


def build_result(pipeline: Any, *, script: str, target: str, duration: float) -> PSResult:
    """A finished ``pypsrp.powershell.PowerShell`` (its ``output``, ``streams``, ``had_errors``)
    as a :class:`PSResult`. ``had_errors`` is True when any error record arrived, as
    ``$?``/``HadErrors`` say in PowerShell."""
    streams = pipeline.streams
    errors = [error_record(e) for e in streams.error]
    return PSResult(
        output=[to_python(v) for v in pipeline.output],
        errors=errors,
        warning=[_text(r) for r in streams.warning],
        verbose=[_text(r) for r in streams.verbose],
        debug=[_text(r) for r in streams.debug],
        information=[to_python(getattr(r, "message_data", None)) for r in streams.information],
        progress=[progress_record(r) for r in streams.progress],
        had_errors=bool(pipeline.had_errors or errors),
        script=script, target=target, duration=duration)
