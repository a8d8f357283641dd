"""psrpcore's deserialized objects -> the plain values of :class:`~.result.PSResult`, and back.

Output values: primitives become plain Python values (``str``, ``int``, ``bool``, ``float``,
``bytes``; dates, durations, GUIDs and decimals stay the ``datetime``/``timedelta``/``UUID``/
``Decimal`` subclasses psrpcore gives), lists and hashtables become ``list``/``dict``, enums the
name PowerShell shows (``"Running"``), every other object a :class:`~.result.PSObjectDict` of its
properties with its type names (``Deserialized.`` removed: the names are those of the remote
object). A SecureString coming back stays a :class:`~pytest_psdirect.Secret`.

Parameters: :class:`~pytest_psdirect.Credential` becomes a ``PSCredential`` whose password is a
``PSSecureString`` (encrypted with the session key, so the pool exchanges keys first:
:func:`needs_session_key`), :class:`~pytest_psdirect.Secret` a ``PSSecureString``; tuples become
lists. The secret is revealed here, when the message is built, and nowhere else.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import uuid
from collections.abc import Mapping
from typing import Any

from psrpcore import types as pstypes

from ..credentials.secret import Credential, Secret
from .result import ErrorRecord, ProgressRecord, PSObjectDict

_MAX_DEPTH = 64
_PREFIX = "Deserialized."
_KEEP = (datetime.datetime, datetime.timedelta, uuid.UUID, decimal.Decimal)


def type_names(obj: pstypes.PSObject) -> tuple[str, ...]:
    """The object's PSTypeNames without the ``Deserialized.`` prefix."""
    return tuple(n[len(_PREFIX):] if n.startswith(_PREFIX) else n
                 for n in obj.PSObject.type_names)


def to_python(obj: Any, depth: int = 0) -> Any:
    """Convert one deserialized value (see the module docstring)."""
    if obj is None or depth > _MAX_DEPTH:
        return None if obj is None else str(obj)
    if isinstance(obj, pstypes.PSSecureString):
        return Secret(str(obj.decrypt()))
    if isinstance(obj, enum.Enum):
        return obj.PSObject.to_string or obj.name if isinstance(obj, pstypes.PSObject) else obj.name
    if isinstance(obj, bool):
        return bool(obj)
    if isinstance(obj, pstypes.PSObject) and "System.Enum" in type_names(obj):
        return obj.PSObject.to_string if obj.PSObject.to_string is not None else _primitive(obj)
    if isinstance(obj, dict):
        return {to_python(k, depth + 1): to_python(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_python(v, depth + 1) for v in obj]
    if isinstance(obj, pstypes.PSQueueBase):
        return [to_python(v, depth + 1) for v in list(obj.queue)]
    if isinstance(obj, (str, int, float, bytes, *_KEEP)):
        return _primitive(obj)
    if isinstance(obj, pstypes.PSObject):
        return _psobject(obj, depth)
    return obj


def _primitive(obj: Any) -> Any:
    kinds: tuple[type[Any], ...] = (str, int, float, bytes)
    for kind in kinds:
        if isinstance(obj, kind):
            return kind(obj)
    return obj


def _psobject(obj: pstypes.PSObject, depth: int) -> PSObjectDict:
    meta = obj.PSObject
    props: dict[str, Any] = {}
    for prop in [*meta.adapted_properties, *meta.extended_properties]:
        props[prop.name] = to_python(prop.get_value(obj), depth + 1)
    names = type_names(obj)
    if names and names[0].endswith("HostInformationMessage") and "Message" in props:
        return PSObjectDict(props, type_names=names, to_string=str(props["Message"]))
    return PSObjectDict(props, type_names=names, to_string=meta.to_string)


def information(record: pstypes.InformationRecord) -> Any:
    """An information record's MessageData (``Write-Host`` text as a ``str``)."""
    data = to_python(record.MessageData)
    if isinstance(data, PSObjectDict) and data.type_names and \
            data.type_names[0].endswith("HostInformationMessage"):
        return data.to_string
    return data


def progress(record: pstypes.ProgressRecord) -> ProgressRecord:
    """One ``Write-Progress`` record."""
    return ProgressRecord(activity=str(record.Activity or ""),
                          status=str(record.StatusDescription or ""),
                          percent_complete=int(record.PercentComplete),
                          activity_id=int(record.ActivityId))


def _position(record: pstypes.ErrorRecord) -> str:
    for info in (record.InvocationInfo,
                 getattr(record.Exception, "SerializedRemoteInvocationInfo", None)):
        text = getattr(info, "PositionMessage", None) if info is not None else None
        if text:
            return str(text)
    return ""


def error_record(record: pstypes.ErrorRecord) -> ErrorRecord:
    """One record of the error stream (or the reason a pipeline failed)."""
    exc = record.Exception
    category = getattr(record.CategoryInfo, "Category", None)
    exc_names = type_names(exc) if isinstance(exc, pstypes.PSObject) else ()
    try:
        message = str(record)
    except AttributeError:  # no Exception.Message: say what there is
        message = str(getattr(exc, "Message", "") or exc or "unknown error")
    return ErrorRecord(
        message=message,
        category=(category.name if isinstance(category, enum.Enum) else str(category or
                                                                                "NotSpecified")),
        fully_qualified_error_id=str(record.FullyQualifiedErrorId or ""),
        target_object=to_python(record.TargetObject),
        script_position=_position(record),
        exception_type=exc_names[0] if exc_names else "")


def to_ps(value: Any) -> Any:
    """A parameter value as psrpcore serializes it (credentials as PSCredential)."""
    if isinstance(value, Credential):
        return pstypes.PSCredential(UserName=value.username,
                                    Password=pstypes.PSSecureString(value.secret.reveal()))
    if isinstance(value, Secret):
        return pstypes.PSSecureString(value.reveal())
    if isinstance(value, list | tuple):
        return [to_ps(v) for v in value]
    if isinstance(value, Mapping) and not isinstance(value, pstypes.PSObject):
        return {k: to_ps(v) for k, v in value.items()}
    if type(value) is int and not -(2**31) <= value < 2**31:
        return pstypes.PSInt64(value)  # psrpcore sends every int below Int32's range as an Int32
    return value


def needs_session_key(value: Any, depth: int = 0) -> bool:
    """True when ``value`` holds a credential or secret (a SecureString needs the session key)."""
    if isinstance(value, Credential | Secret):
        return True
    if depth > _MAX_DEPTH:
        return False
    if isinstance(value, list | tuple):
        return any(needs_session_key(v, depth + 1) for v in value)
    if isinstance(value, Mapping):
        return any(needs_session_key(v, depth + 1) for v in value.values())
    return False
