"""Small helpers of the Redis broker: retry policies and the kombu envelope as it arrives."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from celeriac.drivers.reconnect import RetryPolicy
from celeriac.exceptions import DecodeError
from celeriac.protocol import jsonx
from celeriac.protocol.envelope import from_envelope
from celeriac.protocol.message import Message
from celeriac.transports.options import option


def decode(raw: str) -> tuple[Message, dict[str, Any]]:
    """Envelope -> Message whose properties are kombu's (``delivery_info`` and
    ``body_encoding`` kept, as a kombu consumer sees them; the tag is the delivery's)."""
    try:
        envelope = jsonx.loads(raw)
    except (ValueError, DecodeError) as exc:
        raise DecodeError(f"Malformed message envelope (not kombu JSON): {exc}") from exc
    message, info = from_envelope(envelope)
    properties = envelope.get("properties") if isinstance(envelope, dict) else None
    if isinstance(properties, dict):
        kept = {k: v for k, v in properties.items() if k != "delivery_tag"}
        message = dataclasses.replace(message, properties=kept)
    return message, info


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def retry_policies(
    options: Mapping[str, Any], reconnect: Mapping[str, float]
) -> tuple[RetryPolicy, RetryPolicy]:
    """(reconnect policy, publish policy) from Celery's settings."""
    max_retries = option(options, "broker_connection_max_retries", default=100)
    connection = RetryPolicy.from_mapping({**reconnect, "max_retries": max_retries})
    publish = RetryPolicy.from_mapping(option(options, "task_publish_retry_policy", default=None))
    if not option(options, "task_publish_retry", default=True):
        publish = RetryPolicy(max_retries=0)
    return connection, publish


__all__ = ["decode", "retry_policies", "text"]
