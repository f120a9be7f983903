"""kombu's JSON dialect: stdlib JSON plus ``{"__type__": T, "__value__": V}`` markers.

Celery (through ``kombu.utils.json``) writes datetimes, dates, times, UUIDs, decimals and
bytes as two-key marker objects and turns any object whose key set is exactly
``{"__type__", "__value__"}`` back into the Python value. The output must match kombu byte
for byte (``json.dumps`` defaults: ``", "``/``": "`` separators, ASCII escapes, insertion
order), because the same bytes are compared, stored and hashed on both sides.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from celeriac.exceptions import DecodeError

#: type -> (marker or None, encoder). Order matters: datetime before date (a datetime is a date).
_encoders: dict[type, tuple[str | None, Callable[[Any], Any]]] = {}
#: marker -> decoder of the marker's ``__value__``.
_decoders: dict[str, Callable[[Any], Any]] = {}


def register_type(
    t: type,
    marker: str | None,
    encoder: Callable[[Any], Any],
    decoder: Callable[[Any], Any] | None = None,
) -> None:
    """Teach the encoder (and, with a marker, the decoder) one more Python type.

    With ``marker=None`` the encoder's result is written as is (no envelope), as in kombu.
    """
    _encoders[t] = (marker, encoder)
    if marker is not None and decoder is not None:
        _decoders[marker] = decoder


def _as(marker: str, value: Any) -> dict[str, Any]:
    return {"__type__": marker, "__value__": value}


class JSONEncoder(json.JSONEncoder):
    """The stdlib encoder with kombu's fallbacks for non-JSON types."""

    def default(self, o: Any) -> Any:
        reducer = getattr(o, "__json__", None)
        if reducer is not None:
            return reducer()
        for t, (marker, encoder) in _encoders.items():
            if isinstance(o, t):
                value = encoder(o)
                return value if marker is None else _as(marker, value)
        if isinstance(o, bytes):
            # Two markers, as kombu: readable text stays readable, anything else is base64.
            try:
                return _as("bytes", o.decode("utf-8"))
            except UnicodeDecodeError:
                return _as("base64", base64.b64encode(o).decode("ascii"))
        return super().default(o)


def _object_hook(o: dict[str, Any]) -> Any:
    if len(o) == 2 and o.keys() == {"__type__", "__value__"}:
        marker = o["__type__"]
        decoder = _decoders.get(marker) if isinstance(marker, str) else None
        if decoder is None:
            raise DecodeError(f"unsupported JSON type marker {{'__type__': {marker!r}}}")
        return decoder(o["__value__"])
    return o


# One encoder/decoder each: json.dumps(cls=...) would build a new object on every call.
_ENCODER = JSONEncoder()
_DECODER = json.JSONDecoder(object_hook=_object_hook)


def dumps(obj: Any) -> str:
    """Serialize ``obj`` exactly as ``kombu.utils.json.dumps`` does."""
    return _ENCODER.encode(obj)


def loads(s: str | bytes | bytearray | memoryview) -> Any:
    """Parse kombu JSON, turning marker objects back into Python values.

    Raises:
        ValueError: malformed JSON (``json.JSONDecodeError``) or bytes that are not UTF-8.
        DecodeError: a marker object with an unknown ``__type__``.
    """
    if isinstance(s, memoryview):
        s = s.tobytes()
    if isinstance(s, (bytes, bytearray)):
        s = s.decode("utf-8")
    return _DECODER.decode(s)


def _decode_date(value: str) -> date:
    return datetime.fromisoformat(value).date()


def _decode_uuid(value: Any) -> uuid.UUID:
    return uuid.UUID(**value) if isinstance(value, dict) else uuid.UUID(str(value))


def _register_default_types() -> None:
    register_type(datetime, "datetime", datetime.isoformat, datetime.fromisoformat)
    register_type(date, "date", date.isoformat, _decode_date)
    register_type(time, "time", time.isoformat, time.fromisoformat)
    register_type(Decimal, "decimal", str, Decimal)
    register_type(uuid.UUID, "uuid", lambda u: {"hex": u.hex}, _decode_uuid)
    _decoders["bytes"] = lambda v: v.encode("utf-8")
    _decoders["base64"] = lambda v: base64.b64decode(v.encode("ascii"))


_register_default_types()

__all__ = ["JSONEncoder", "dumps", "loads", "register_type"]
