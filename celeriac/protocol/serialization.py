"""The serializer registry: names <-> content types, ``accept_content`` enforcement.

Mirrors ``kombu.serialization``: ``json`` (kombu's dialect, :mod:`.jsonx`), ``pickle``
(protocol 4, as kombu writes it), and the optional ``msgpack`` and ``yaml``. Raw payloads
(``application/data``, ``text/plain``) pass through as bytes / str.
"""

from __future__ import annotations

import codecs
import difflib
import importlib
import pickle
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any

from celeriac.exceptions import (
    ContentDisallowed,
    DecodeError,
    EncodeError,
    ImproperlyConfigured,
    SecurityError,
)
from celeriac.protocol import jsonx

SerializerName = str

#: Same as kombu; Python 3.8+ defaults to 5, which older Celery workers cannot read.
PICKLE_PROTOCOL = 4

#: Raw payloads carry no code and are never refused (kombu trusts the first two).
TRUSTED_CONTENT = frozenset({"application/data", "application/text", "text/plain"})
#: Content encodings that mean "bytes, do not decode to text".
_BINARY_ENCODINGS = frozenset({"binary", "ascii-8bit"})


@dataclass(frozen=True, slots=True)
class _Codec:
    name: str
    content_type: str
    content_encoding: str
    encoder: Callable[[Any], bytes | str]
    decoder: Callable[[bytes], Any]


_by_name: dict[str, _Codec] = {}
_by_type: dict[str, _Codec] = {}
#: Content types refused where no ``accept`` list is given (kombu's disabled serializers):
#: ``setup_security()`` disables all but the ``auth`` serializer.
_disabled: set[str] = set()


def register(
    name: str,
    encoder: Callable[[Any], bytes | str],
    decoder: Callable[[bytes], Any],
    content_type: str,
    content_encoding: str = "utf-8",
) -> None:
    """Register (or replace) a serializer under ``name`` and ``content_type``."""
    codec = _Codec(name, content_type, content_encoding, encoder, decoder)
    _by_name[name] = codec
    _by_type[content_type] = codec
    _ACCEPTED.clear()


def _content_type(name: str) -> str:
    if "/" in name:
        return name
    codec = _by_name.get(name)
    if codec is None:
        raise _unknown_serializer(name)
    return codec.content_type


def disable(name: str) -> None:
    """Refuse ``name`` (a serializer or content type) wherever no ``accept`` list is given."""
    _disabled.add(_content_type(name))


def enable(name: str) -> None:
    """Undo :func:`disable` for ``name``."""
    _disabled.discard(_content_type(name))


def disable_insecure_serializers(allowed: Iterable[str] | None = ("json",)) -> None:
    """Disable every registered serializer but ``allowed`` (kombu's function of this name).

    Producers still encode with them; only decoding without an ``accept`` list (remote
    control) refuses them. ``allowed=None`` disables them all.
    """
    for codec in _by_name.values():
        _disabled.add(codec.content_type)
    for name in allowed or ():
        enable(name)


def unregister(name: str) -> None:
    """Remove the serializer ``name`` (its content type decodes as raw data again)."""
    codec = _by_name.pop(name, None)
    if codec is not None and _by_type.get(codec.content_type) is codec:
        del _by_type[codec.content_type]
    _ACCEPTED.clear()


def disabled() -> frozenset[str]:
    """The content types :func:`disable` refused, where no ``accept`` list is given."""
    return frozenset(_disabled)


def registered() -> list[str]:
    """Names of every registered serializer (optional ones may still lack their library)."""
    return list(_by_name)


def _unknown_serializer(name: str) -> ImproperlyConfigured:
    known = sorted(_by_name)
    hint = difflib.get_close_matches(name, known, n=1)
    suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
    return ImproperlyConfigured(
        f"Unknown serializer {name!r}{suggestion}: known serializers are {', '.join(known)}"
    )


def content_types(names: Iterable[str]) -> frozenset[str]:
    """Normalise serializer names and/or content types (``accept_content``) to content types."""
    result = set()
    for name in names:
        if "/" in name:
            result.add(name)
        elif name in _by_name:
            result.add(_by_name[name].content_type)
        else:
            raise _unknown_serializer(name)
    return frozenset(result)


_ACCEPTED: dict[Collection[str], frozenset[str]] = {}


def _accepted(accept: Collection[str]) -> frozenset[str]:
    """``content_types(accept)``, remembered: every message read checks it."""
    key = accept if isinstance(accept, (tuple, frozenset)) else tuple(accept)
    found = _ACCEPTED.get(key)
    if found is None:
        found = content_types(key)  # an unknown name raises here, every time
        if len(_ACCEPTED) >= 64:  # settings are few; a caller passing new lists each time
            _ACCEPTED.clear()
        _ACCEPTED[key] = found
    return found


def _text_encoding(content_encoding: str) -> str:
    """A usable text codec for ``content_encoding`` (utf-8 when it names none)."""
    try:
        return codecs.lookup(content_encoding).name
    except LookupError:
        return "utf-8"


def dumps(obj: Any, serializer: str) -> tuple[bytes, str, str]:
    """Serialize ``obj`` -> ``(data, content_type, content_encoding)``.

    Raises:
        EncodeError: the value cannot be represented with this serializer.
        ImproperlyConfigured: unknown serializer, or its library is not installed.
    """
    codec = _by_name.get(serializer)
    if codec is None:
        raise _unknown_serializer(serializer)
    try:
        payload = codec.encoder(obj)
    except (ImproperlyConfigured, SecurityError):
        raise
    except Exception as exc:  # each library raises its own error type
        raise EncodeError(
            f"Cannot serialize {type(obj).__name__} with {serializer}: {exc}"
        ) from exc
    if isinstance(payload, str):
        payload = payload.encode(_text_encoding(codec.content_encoding))
    return payload, codec.content_type, codec.content_encoding


def _refused(content_type: str) -> ContentDisallowed:
    codec = _by_type.get(content_type)
    name = codec.name if codec is not None else content_type
    described = f"{name} ({content_type})" if codec is not None else content_type
    return ContentDisallowed(
        f"Refusing to deserialize untrusted content of type {described}; add {name!r} to "
        "accept_content (result_accept_content for results) to allow it, but only if every "
        "producer is trusted"
    )


def _disabled_error(content_type: str) -> ContentDisallowed:
    codec = _by_type.get(content_type)
    described = f"{codec.name} ({content_type})" if codec is not None else content_type
    return ContentDisallowed(
        f"Refusing to deserialize content of type {described}: that serializer is disabled "
        "(setup_security() disables every serializer but the signed 'auth' one)"
    )


def loads(
    data: bytes | str,
    content_type: str,
    content_encoding: str,
    *,
    accept: Collection[str] | None,
    force: bool = False,
) -> Any:
    """Deserialize ``data``; ``accept`` holds serializer names or content types (None = all
    but the disabled ones; ``force`` decodes those too, as kombu's ``force``).

    Raises:
        ContentDisallowed: the content type is not in ``accept``, or is disabled.
        DecodeError: the payload is malformed (the message names the content type).
        SecurityError: a signed (``auth``) payload failed its signature check.
    """
    content_type = content_type or "application/data"
    if accept is not None:
        if content_type not in TRUSTED_CONTENT and content_type not in _accepted(accept):
            raise _refused(content_type)
    elif content_type in _disabled and not force:
        raise _disabled_error(content_type)
    if not data:
        return data
    if isinstance(data, str):
        data = data.encode(_text_encoding(content_encoding or "utf-8"))
    codec = _by_type.get(content_type)
    if codec is not None:
        try:
            return codec.decoder(bytes(data))
        except (ImproperlyConfigured, SecurityError):
            raise
        except Exception as exc:  # json, pickle, msgpack and yaml each raise their own errors
            raise DecodeError(f"Malformed {content_type} message body: {exc}") from exc
    encoding = (content_encoding or "utf-8").lower()
    if content_type == "application/data" or encoding in _BINARY_ENCODINGS:
        return data
    try:
        return bytes(data).decode(_text_encoding(encoding))
    except UnicodeDecodeError as exc:
        raise DecodeError(f"Malformed {content_type} message body: {exc}") from exc


# -- the built-in serializers --------------------------------------------------------------

_EXTRAS = {"msgpack": ("msgpack", "msgpack"), "yaml": ("yaml", "PyYAML")}


def _require(serializer: str) -> Any:
    module_name, dist = _EXTRAS[serializer]
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"The {serializer} serializer needs the {dist} library: "
            f"pip install 'celeriac[{serializer}]'"
        ) from exc


def _pickle_dumps(obj: Any) -> bytes:
    return pickle.dumps(obj, protocol=PICKLE_PROTOCOL)


def _pickle_loads(data: bytes) -> Any:
    # Only reached when accept_content (or accept=None) allows pickle.
    return pickle.loads(data)


def _msgpack_dumps(obj: Any) -> bytes:
    packed: bytes = _require("msgpack").packb(obj, use_bin_type=True)
    return packed


def _msgpack_loads(data: bytes) -> Any:
    return _require("msgpack").unpackb(data, raw=False)


def _yaml_dumps(obj: Any) -> str:
    dumped: str = _require("yaml").safe_dump(obj)
    return dumped


def _yaml_loads(data: bytes) -> Any:
    return _require("yaml").safe_load(data)


register("json", jsonx.dumps, jsonx.loads, "application/json", "utf-8")
register("pickle", _pickle_dumps, _pickle_loads, "application/x-python-serialize", "binary")
register("msgpack", _msgpack_dumps, _msgpack_loads, "application/x-msgpack", "binary")
register("yaml", _yaml_dumps, _yaml_loads, "application/x-yaml", "utf-8")

__all__ = [
    "PICKLE_PROTOCOL",
    "TRUSTED_CONTENT",
    "SerializerName",
    "content_types",
    "disable",
    "disable_insecure_serializers",
    "disabled",
    "dumps",
    "enable",
    "loads",
    "register",
    "registered",
    "unregister",
]
