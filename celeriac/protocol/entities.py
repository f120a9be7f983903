"""``Exchange`` and ``Queue``: declarations with kombu's names and arguments.

``Queue('video', Exchange('media', 'topic'), routing_key='media.video', max_priority=10,
queue_arguments={'x-dead-letter-exchange': 'dlx'})`` means what it means in kombu. The
``expires`` / ``message_ttl`` shortcuts are seconds and become the ``x-expires`` /
``x-message-ttl`` milliseconds of the declaration, as kombu converts them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Exchange:
    """A message exchange (``direct``, ``topic``, ``fanout``, ``headers``); ``""`` is the default.

    ``delivery_mode`` (1 transient, 2 persistent) is the default for messages published to it.
    """

    name: str = ""
    type: str = "direct"
    durable: bool = True
    auto_delete: bool = False
    arguments: Mapping[str, Any] = field(default_factory=dict)
    delivery_mode: int | None = None


@dataclass(frozen=True, slots=True, init=False)
class Queue:
    """A named queue bound to an exchange with a routing key (kombu's ``Queue``)."""

    name: str
    exchange: Exchange | None
    routing_key: str | None
    durable: bool
    exclusive: bool
    auto_delete: bool
    queue_arguments: Mapping[str, Any]
    binding_arguments: Mapping[str, Any]
    consumer_arguments: Mapping[str, Any]
    max_priority: int | None
    expires: float | None
    message_ttl: float | None
    max_length: int | None
    max_length_bytes: int | None
    no_ack: bool
    alias: str | None

    def __init__(
        self,
        name: str,
        exchange: Exchange | str | None = None,
        routing_key: str | None = None,
        *,
        durable: bool = True,
        exclusive: bool = False,
        auto_delete: bool = False,
        queue_arguments: Mapping[str, Any] | None = None,
        binding_arguments: Mapping[str, Any] | None = None,
        consumer_arguments: Mapping[str, Any] | None = None,
        max_priority: int | None = None,
        expires: float | None = None,
        message_ttl: float | None = None,
        max_length: int | None = None,
        max_length_bytes: int | None = None,
        no_ack: bool = False,
        alias: str | None = None,
    ) -> None:
        if exchange is None:
            exchange = Exchange(name)
        elif isinstance(exchange, str):
            exchange = Exchange(exchange)
        values: dict[str, Any] = {
            "name": name,
            "exchange": exchange,
            "routing_key": name if routing_key is None else routing_key,
            # kombu: an exclusive queue is always auto-deleted, and never durable in practice.
            "durable": durable,
            "exclusive": exclusive,
            "auto_delete": auto_delete or exclusive,
            "queue_arguments": dict(queue_arguments or {}),
            "binding_arguments": dict(binding_arguments or {}),
            "consumer_arguments": dict(consumer_arguments or {}),
            "max_priority": max_priority,
            "expires": expires,
            "message_ttl": message_ttl,
            "max_length": max_length,
            "max_length_bytes": max_length_bytes,
            "no_ack": no_ack,
            "alias": alias,
        }
        for key, value in values.items():
            object.__setattr__(self, key, value)

    @property
    def key(self) -> str:
        """The routing key as a plain string."""
        return self.routing_key or ""

    @property
    def arguments(self) -> dict[str, Any]:
        """The ``queue.declare`` arguments: ``queue_arguments`` plus the shortcuts (kombu's)."""
        args = dict(self.queue_arguments)
        shortcuts = {
            "x-expires": _ms(self.expires),
            "x-message-ttl": _ms(self.message_ttl),
            "x-max-length": self.max_length,
            "x-max-length-bytes": self.max_length_bytes,
            "x-max-priority": self.max_priority,
        }
        args.update({k: v for k, v in shortcuts.items() if v is not None})
        return args


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1000)


__all__ = ["Exchange", "Queue"]
