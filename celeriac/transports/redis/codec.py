"""Small helpers of the Redis broker: option parsing and the kombu envelope as it arrives."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from celeriac.drivers.reconnect import RetryPolicy
from celeriac.exceptions import DecodeError, ImproperlyConfigured
from celeriac.protocol import jsonx
from celeriac.protocol.envelope import from_envelope
from celeriac.protocol.message import Message


def number(options: Mapping[str, Any], name: str, default: float) -> float:
    value = options.get(name, default)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ImproperlyConfigured(f"Transport option {name}={value!r} is not a number") from None


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


def setting(options: Mapping[str, Any], name: str, default: Any) -> Any:
    """A broker setting; they travel in the options under their names (app.connection())."""
    value = options.get(name)
    return default if value is None else value


def retry_policies(
    options: Mapping[str, Any], reconnect: Mapping[str, float]
) -> tuple[RetryPolicy, RetryPolicy]:
    """(reconnect policy, publish policy) from Celery's settings."""
    max_retries = setting(options, "broker_connection_max_retries", 100)
    connection = RetryPolicy.from_mapping({**reconnect, "max_retries": max_retries})
    publish = RetryPolicy.from_mapping(setting(options, "task_publish_retry_policy", None))
    if not setting(options, "task_publish_retry", True):
        publish = RetryPolicy(max_retries=0)
    return connection, publish


__all__ = ["decode", "number", "retry_policies", "setting", "text"]
