"""Declaring exchanges, queues and bindings on an AMQP channel, as Celery declares them (§3.2).

Explicit declarations (``declare_queue(Queue(...))``) are sent as written, so a mismatch with
what already exists fails loudly (``PRECONDITION_FAILED``), as in Celery. Queues the transport
declares on its own (first use by ``publish`` through the default exchange or by ``get``) take
Celery's defaults for an auto-created queue, and an existing queue with other arguments is
simply used.
"""

from __future__ import annotations

import logging

import amqp
import amqp.exceptions

from celeriac.exceptions import OperationalError
from celeriac.protocol.entities import Exchange, Queue

logger = logging.getLogger("celeriac.transports.amqp")


def celery_exchange(name: str, known: dict[str, Exchange]) -> Exchange:
    """The declaration of an events / remote-control exchange not declared explicitly.

    Celery's own: ``<ns>.pidbox`` fanout and ``reply.<ns>.pidbox`` direct, both transient;
    anything else (``celeryev``) a durable topic exchange, so routing-key patterns work.
    """
    if name in known:
        return known[name]
    if name.startswith("reply.") and name.endswith(".pidbox"):
        return Exchange(name, "direct", durable=False)
    if name.endswith(".pidbox"):
        return Exchange(name, "fanout", durable=False)
    return Exchange(name, "topic", durable=True)


def declare_exchange(channel: amqp.Channel, exchange: Exchange) -> None:
    if not exchange.name:
        return  # the default exchange always exists and cannot be declared
    channel.exchange_declare(
        exchange.name,
        exchange.type,
        durable=exchange.durable,
        auto_delete=exchange.auto_delete,
        arguments=dict(exchange.arguments) or None,
    )


def declare_exchange_leniently(channel: amqp.Channel, exchange: Exchange) -> None:
    """Declare ``exchange`` unless it exists already with another type (then use that one)."""
    try:
        declare_exchange(channel, exchange)
    except amqp.exceptions.PreconditionFailed as exc:
        logger.debug("Exchange %r exists with another declaration: %s", exchange.name, exc)


def declare_queue(channel: amqp.Channel, queue: Queue) -> None:
    """Declare ``queue``, its exchange and its binding; explicit: errors are raised."""
    try:
        channel.queue_declare(
            queue.name,
            durable=queue.durable,
            exclusive=queue.exclusive,
            auto_delete=queue.auto_delete,
            arguments=queue.arguments or None,
        )
        exchange = queue.exchange
        if exchange is not None and exchange.name:
            declare_exchange(channel, exchange)
            channel.queue_bind(
                queue.name,
                exchange.name,
                queue.key,
                arguments=dict(queue.binding_arguments) or None,
            )
    except amqp.exceptions.ChannelError as exc:
        # py-amqp reopens the channel after the broker closed it; the caller may go on.
        raise OperationalError(f"Cannot declare queue {queue.name!r}: {exc}") from exc


def declare_default_queue(channel: amqp.Channel, name: str, max_priority: int | None) -> None:
    """A queue first used without a declaration: durable, as Celery creates missing queues."""
    arguments = {"x-max-priority": max_priority} if max_priority is not None else None
    try:
        channel.queue_declare(name, durable=True, auto_delete=False, arguments=arguments)
    except amqp.exceptions.PreconditionFailed as exc:
        logger.debug("Queue %r exists with other arguments; using it as it is: %s", name, exc)


def queue_size(channel: amqp.Channel, name: str) -> int:
    """Ready messages in ``name`` (0 when the queue does not exist)."""
    try:
        _, count, _ = channel.queue_declare(name, passive=True)
    except amqp.exceptions.NotFound:
        return 0
    return int(count)


def exchange_exists(channel: amqp.Channel, name: str) -> bool:
    try:
        channel.exchange_declare(name, "direct", passive=True)
    except amqp.exceptions.NotFound:
        return False
    return True


def purge_queue(channel: amqp.Channel, name: str) -> int:
    try:
        return int(channel.queue_purge(name) or 0)
    except amqp.exceptions.NotFound:
        return 0


__all__ = [
    "celery_exchange",
    "declare_default_queue",
    "declare_exchange",
    "declare_exchange_leniently",
    "declare_queue",
    "exchange_exists",
    "purge_queue",
    "queue_size",
]
