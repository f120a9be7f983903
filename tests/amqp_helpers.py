"""RabbitMQ test support: transports that remember the queues they touch, and their cleanup.

The whole test run shares one vhost (``tests.servers.rabbitmq_url``). The conformance suite
uses fixed queue names (``q``, ``a``...), so each test namespace deletes the queues the
previous one touched before it starts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

import amqp

from celeriac.protocol.entities import Queue
from celeriac.protocol.message import Message
from celeriac.transports.amqp.transport import AMQPTransport
from celeriac.transports.base import Delivery
from tests.servers import (
    RABBITMQ_HOST,
    RABBITMQ_PASSWORD,
    RABBITMQ_PORT,
    RABBITMQ_USER,
    rabbitmq_url,
)


class TrackedAMQPTransport(AMQPTransport):
    """An AMQPTransport that records every queue name used through its public methods."""

    touched: ClassVar[set[str]] = set()

    def declare_queue(self, queue: Queue) -> None:
        self.touched.add(queue.name)
        super().declare_queue(queue)

    def bind(self, queue: str, exchange: str, routing_key: str) -> None:
        self.touched.add(queue)
        super().bind(queue, exchange, routing_key)

    def publish_many(
        self, items: Sequence[tuple[Message, str, str]], *, not_before: float | None = None
    ) -> None:
        self.touched.update(key for _message, exchange, key in items if not exchange)
        super().publish_many(items, not_before=not_before)

    def get(
        self, queues: Sequence[str], *, max_messages: int = 1, timeout: float | None = None
    ) -> list[Delivery]:
        self.touched.update(queues)
        return super().get(queues, max_messages=max_messages, timeout=timeout)


def delete_queues(url: str, names: Iterable[str]) -> None:
    """Delete ``names`` in the vhost of ``url`` (missing ones are fine)."""
    vhost = url.rsplit("/", 1)[1]
    conn = amqp.Connection(
        f"{RABBITMQ_HOST}:{RABBITMQ_PORT}",
        userid=RABBITMQ_USER,
        password=RABBITMQ_PASSWORD,
        virtual_host=vhost,
    )
    conn.connect()
    try:
        channel = conn.channel()
        for name in names:
            channel.queue_delete(name)
    finally:
        conn.close()


_current: list[str] = [""]


def conformance_transport(name: str, options: Mapping[str, Any]) -> AMQPTransport:
    """A client of namespace ``name``; a new namespace first empties the previous one's queues.

    Queues the transport creates on its own get ``x-max-priority`` (the suite checks
    priority order, which RabbitMQ honours only on such queues).
    """
    url = rabbitmq_url()
    if name != _current[0]:
        delete_queues(url, sorted(TrackedAMQPTransport.touched))
        TrackedAMQPTransport.touched.clear()
        _current[0] = name
    return TrackedAMQPTransport(url, {"task_queue_max_priority": 9, **options})
