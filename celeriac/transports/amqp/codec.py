"""``Message`` <-> AMQP ``basic.publish`` / ``basic.deliver`` (wire protocol §3.1).

The body travels as raw bytes; ``content_type`` / ``content_encoding`` are the same-named basic
properties, the headers are the ``application_headers`` table, and the other AMQP basic
properties (``correlation_id``, ``reply_to``, ``delivery_mode``, ``priority``, ``expiration``,
...) travel as themselves. Anything else in ``Message.properties`` (kombu's virtual-transport
envelope fields such as ``body_encoding`` / ``delivery_info``) has no AMQP slot and is dropped,
exactly as kombu's py-amqp transport drops it.
"""

from __future__ import annotations

import math
from typing import Any

import amqp

from celeriac.protocol.message import Message

#: AMQP basic properties other than the three the Message has fields for.
BASIC_PROPERTIES = (
    "delivery_mode",
    "priority",
    "correlation_id",
    "reply_to",
    "expiration",
    "message_id",
    "timestamp",
    "type",
    "user_id",
    "app_id",
    "cluster_id",
)
#: Set on the copy that ``reject(requeue=True)`` puts at the end of a queue: the delivery's
#: original ``[exchange, routing_key]``; its presence means "redelivered".
REQUEUED_HEADER = "x-celeriac-requeued"


def to_amqp(message: Message, extra_headers: dict[str, Any] | None = None) -> amqp.Message:
    """The py-amqp message for ``message`` (headers, properties, raw body)."""
    properties = {
        name: message.properties[name]
        for name in BASIC_PROPERTIES
        if message.properties.get(name) is not None
    }
    headers = dict(message.headers)
    if extra_headers:
        headers.update(extra_headers)
    return amqp.Message(
        message.body,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        application_headers=headers,
        **properties,
    )


#: The integers an AMQP field table carries (py-amqp writes them as signed 64-bit).
_INT_RANGE = (-(2**63), 2**63 - 1)


def _uncarried(value: Any) -> str | None:
    """Why an AMQP field table cannot carry ``value`` itself (containers: see ``_find``)."""
    kind = type(value)
    if kind is int or (isinstance(value, int) and kind is not bool):
        low, high = _INT_RANGE
        if not low <= value <= high:
            return "an integer beyond the 64-bit range of AMQP field tables"
    elif kind is float and not math.isfinite(value):
        # py-amqp writes it; RabbitMQ cannot read it and closes the channel, losing what
        # was sent on it after.
        return f"the float {value!r}, which RabbitMQ cannot read (it closes the channel)"
    return None


def _find(value: Any, where: str) -> tuple[str, str] | None:
    kind = type(value)
    if kind is str or value is None or kind is bool:
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _find(item, f"{where}[{key!r}]")
            if found:
                return found
        return None
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = _find(item, f"{where}[{index}]")
            if found:
                return found
        return None
    why = _uncarried(value)
    return (where, why) if why else None


def unsendable(message: Message) -> str | None:
    """Why RabbitMQ cannot carry ``message``'s headers (an integer beyond 64 bits, a float
    that is not finite), naming the header; None when it can. Checked before each publish:
    RabbitMQ would close the channel on the float, py-amqp refuses the integer."""
    for name, value in message.headers.items():
        found = _find(value, repr(name))
        if found:
            where, why = found
            return (
                f"header {where} holds {why}; send it as a string, or as a task argument "
                "(the body carries any JSON value)"
            )
    return None


def from_amqp(raw: amqp.Message) -> tuple[Message, str, str, bool]:
    """``(message, exchange, routing_key, redelivered)`` of a delivered py-amqp message."""
    props = raw.properties
    headers = dict(props.get("application_headers") or {})
    info = raw.delivery_info or {}
    exchange, routing_key = info.get("exchange", ""), info.get("routing_key", "")
    redelivered = bool(info.get("redelivered", False))
    requeued = headers.pop(REQUEUED_HEADER, None)
    if isinstance(requeued, list) and len(requeued) == 2:
        exchange, routing_key = str(requeued[0]), str(requeued[1])
        redelivered = True
    body = raw.body
    message = Message(
        body=body.encode() if isinstance(body, str) else bytes(body),
        content_type=props.get("content_type") or "",
        content_encoding=props.get("content_encoding") or "",
        headers=headers,
        properties={name: props[name] for name in BASIC_PROPERTIES if props.get(name) is not None},
    )
    return message, exchange, routing_key, redelivered


__all__ = [
    "BASIC_PROPERTIES",
    "REQUEUED_HEADER",
    "from_amqp",
    "to_amqp",
    "unsendable",
]
