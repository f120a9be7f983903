"""kombu's virtual-transport envelope (Redis lists, SQLite rows) <-> :class:`Message`.

The envelope is one kombu-JSON object: ``body`` (base64 by default), hyphenated
``content-encoding``/``content-type``, ``headers`` and ``properties``; the transport adds
``delivery_info``, ``priority``, ``body_encoding`` and ``delivery_tag`` after the message's
own properties, which is the order kombu writes them in (tests compare bytes).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from celeriac.exceptions import DecodeError, EncodeError, ImproperlyConfigured
from celeriac.protocol import jsonx
from celeriac.protocol.message import Message

#: Properties the transport owns; they are written last and stripped when reading.
TRANSPORT_PROPERTIES = frozenset({"delivery_info", "priority", "body_encoding", "delivery_tag"})


def _is_plain(body_encoding: str | None) -> bool:
    """kombu stores the body unencoded when ``body_encoding`` is empty or utf-8."""
    return not body_encoding or body_encoding.lower() == "utf-8"


def _encode_body(body: bytes, body_encoding: str | None) -> str:
    if _is_plain(body_encoding):
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EncodeError(
                "Binary message body cannot be stored with body_encoding "
                f"{body_encoding!r}: use body_encoding='base64'"
            ) from exc
    if body_encoding == "base64":
        return base64.b64encode(body).decode("ascii")
    raise ImproperlyConfigured(f"Unknown body_encoding {body_encoding!r}: use 'base64'")


def _decode_body(body: Any, body_encoding: Any) -> bytes:
    if not body:
        return b""
    if isinstance(body, str):
        body = body.encode("utf-8")
    if not isinstance(body, bytes):
        raise DecodeError(f"Envelope body must be a string, got {type(body).__name__}")
    if _is_plain(body_encoding):
        return body
    if body_encoding != "base64":
        raise DecodeError(f"Envelope has unknown body_encoding {body_encoding!r}")
    try:
        return base64.b64decode(body)
    except (binascii.Error, ValueError) as exc:
        raise DecodeError(f"Envelope body is not valid base64: {exc}") from exc


def to_envelope(
    message: Message,
    *,
    exchange: str,
    routing_key: str,
    delivery_tag: str,
    body_encoding: str | None = "base64",
    redelivered: bool = False,
) -> dict[str, Any]:
    """The envelope mapping kombu stores for ``message`` published to ``exchange``/``routing_key``.

    ``redelivered`` marks ``delivery_info`` as a restored message does (the ``redelivered``
    header, if any, travels in ``message.headers``).
    """
    own = message.properties
    if TRANSPORT_PROPERTIES.isdisjoint(own):  # the common case: a plain copy
        properties = dict(own)
    else:
        properties = {k: v for k, v in own.items() if k not in TRANSPORT_PROPERTIES}
    delivery_info: dict[str, Any] = {"exchange": exchange, "routing_key": routing_key}
    if redelivered:
        delivery_info["redelivered"] = True
    properties["delivery_info"] = delivery_info
    properties["priority"] = own.get("priority") or 0
    properties["body_encoding"] = body_encoding
    properties["delivery_tag"] = delivery_tag
    return {
        "body": _encode_body(message.body, body_encoding),
        "content-encoding": message.content_encoding,
        "content-type": message.content_type,
        "headers": message.headers,  # read only (encoded), never changed
        "properties": properties,
    }


def dump_envelope(
    message: Message,
    *,
    exchange: str,
    routing_key: str,
    delivery_tag: str,
    body_encoding: str | None = "base64",
    redelivered: bool = False,
) -> str:
    """The exact JSON string kombu's Redis transport LPUSHes for ``message``."""
    return jsonx.dumps(
        to_envelope(
            message,
            exchange=exchange,
            routing_key=routing_key,
            delivery_tag=delivery_tag,
            body_encoding=body_encoding,
            redelivered=redelivered,
        )
    )


def _parse(data: str | bytes | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(data, Mapping):
        return data
    try:
        parsed = jsonx.loads(data)
    except (ValueError, DecodeError) as exc:
        raise DecodeError(f"Malformed message envelope (not kombu JSON): {exc}") from exc
    if not isinstance(parsed, Mapping):
        raise DecodeError(f"Message envelope must be a JSON object, got {type(parsed).__name__}")
    return parsed


def from_envelope(data: str | bytes | Mapping[str, Any]) -> tuple[Message, dict[str, Any]]:
    """Parse an envelope -> (Message, delivery_info).

    ``delivery_info`` holds ``exchange``, ``routing_key`` (plus any other keys the envelope
    had), ``priority``, ``redelivered`` and ``delivery_tag``.
    """
    envelope = _parse(data)
    raw_properties = envelope.get("properties") or {}
    headers = dict(envelope.get("headers") or {})
    if not isinstance(raw_properties, Mapping):
        raise DecodeError("Message envelope 'properties' must be an object")
    properties = {k: v for k, v in raw_properties.items() if k not in TRANSPORT_PROPERTIES}
    if "priority" in raw_properties:
        properties["priority"] = raw_properties["priority"]
    message = Message(
        body=_decode_body(envelope.get("body"), raw_properties.get("body_encoding")),
        content_type=envelope.get("content-type") or "application/data",
        content_encoding=envelope.get("content-encoding") or "utf-8",
        headers=headers,
        properties=properties,
    )
    info = dict(raw_properties.get("delivery_info") or {})
    info.setdefault("exchange", "")
    info.setdefault("routing_key", "")
    info["priority"] = message.priority
    info["redelivered"] = bool(info.get("redelivered") or headers.get("redelivered"))
    info["delivery_tag"] = raw_properties.get("delivery_tag")
    return message, info


__all__ = ["TRANSPORT_PROPERTIES", "dump_envelope", "from_envelope", "to_envelope"]
