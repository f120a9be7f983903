"""The Transport seam: what every broker implements, and the shared behaviour above it.

A transport moves :class:`~celeriac.protocol.message.Message` values between producers and
consumers. It knows nothing about tasks: ETA holding, expiry and revocation are the worker's
business. Every implementation is proved by ``tests/conformance/test_transport.py``.

This base states everything every broker does. What only some brokers do (defer, fanout,
ack-and-fetch, lease renewal, giving back prefetched messages) is a Protocol in
:mod:`celeriac.transports.capabilities`, checked with ``isinstance``.

Delivery is *pull* based: the consumer asks :meth:`Transport.get` for up to ``max_messages``
ready messages and acknowledges each :class:`Delivery` (or rejects it) when the configured
policy says so. A message that was delivered and not acknowledged comes back when its
consumer closes the transport, rejects it with ``requeue=True``, or (on brokers without a
native notion of a consumer) when its lease runs out (the ``Leases`` capability).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, ClassVar

from celeriac.protocol.entities import Exchange, Queue
from celeriac.protocol.message import Message


@dataclass(frozen=True, slots=True)
class Delivery:
    """A message handed to one consumer, with the handle to acknowledge it."""

    message: Message
    queue: str
    exchange: str
    routing_key: str
    delivery_tag: str
    redelivered: bool = False
    transport: Transport | None = field(default=None, compare=False, repr=False)

    @property
    def delivery_info(self) -> dict[str, Any]:
        """Celery's ``request.delivery_info`` mapping."""
        return {
            "exchange": self.exchange,
            "routing_key": self.routing_key,
            "priority": self.message.priority,
            "redelivered": self.redelivered,
        }

    def ack(self) -> None:
        """Acknowledge: the broker forgets the message."""
        assert self.transport is not None, "delivery has no transport"
        self.transport.ack([self])

    def reject(self, requeue: bool = False) -> None:
        """Reject: drop the message, or with ``requeue`` put it back at the end of its queue."""
        assert self.transport is not None, "delivery has no transport"
        self.transport.reject([self], requeue=requeue)


class Transport(ABC):
    """A broker connection. One instance per process (create after ``fork``)."""

    #: URL schemes this class serves (the literal table in ``transports/urls.py`` uses them).
    schemes: ClassVar[tuple[str, ...]] = ()
    #: True when priorities are honoured by the broker itself.
    supports_priority: ClassVar[bool] = False
    #: True when publish(not_before=...) keeps the message invisible until then.
    supports_delayed_delivery: ClassVar[bool] = False
    #: True when a larger ``priority`` is served first (AMQP); Redis serves 0 first.
    priority_higher_first: ClassVar[bool] = True
    #: Each process may open its own connection and consume (prefork children then fetch
    #: their own work); a broker that lives in one process's memory cannot.
    direct_consume: ClassVar[bool] = False
    #: Messages a connection held unacknowledged go back to their queues when it closes
    #: (AMQP); otherwise another connection can settle or restore them by delivery tag.
    returns_on_close: ClassVar[bool] = False

    def __init__(self, url: str, options: Mapping[str, Any] | None = None) -> None:
        self.url = url
        self.options: dict[str, Any] = dict(options or {})
        self.exchanges: dict[str, Exchange] = {}
        #: Set by a user that only publishes on this connection (the producer's pool, the
        #: rpc:// result publisher): a transport may then skip what only reading its own
        #: writes needs (RabbitMQ: confirm mode). Reads stay allowed.
        self.send_only = False
        self._abandoned = threading.Event()  # see abandon()

    # -- lifecycle -----------------------------------------------------------------------
    @abstractmethod
    def open(self) -> None:
        """Connect. Idempotent; publish/get call it when needed."""

    @abstractmethod
    def close(self) -> None:
        """Disconnect; messages delivered to this consumer and not acked go back to their queue."""

    def __enter__(self) -> Transport:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- topology ------------------------------------------------------------------------
    def declare_exchange(self, exchange: Exchange) -> None:
        """Remember an exchange's type (virtual brokers keep types in process memory)."""
        if exchange.name:
            self.exchanges[exchange.name] = exchange

    @abstractmethod
    def declare_queue(self, queue: Queue) -> None:
        """Create ``queue`` if missing and bind it to its exchange with its routing key."""

    @abstractmethod
    def bind(self, queue: str, exchange: str, routing_key: str) -> None:
        """Bind an existing queue to an exchange."""

    # -- producing (a transport writes one of the two; the other defaults to it) ----------
    def publish(
        self,
        message: Message,
        *,
        exchange: str = "",
        routing_key: str,
        not_before: float | None = None,
    ) -> None:
        """Publish one message.

        With ``exchange=""`` the routing key is the queue name (AMQP's default exchange).
        ``not_before`` (Unix time) is a hint that transports with
        ``supports_delayed_delivery`` honour; others deliver at once (the worker holds ETA
        messages itself, as Celery's does).
        """
        self.publish_many([(message, exchange, routing_key)], not_before=not_before)

    def publish_many(
        self, items: Sequence[tuple[Message, str, str]], *, not_before: float | None = None
    ) -> None:
        """Publish several ``(message, exchange, routing_key)`` triples; brokers batch them."""
        for message, exchange, routing_key in items:
            self.publish(message, exchange=exchange, routing_key=routing_key, not_before=not_before)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.publish is Transport.publish and cls.publish_many is Transport.publish_many:
            raise TypeError(f"{cls.__name__} must implement publish or publish_many")

    # -- consuming -----------------------------------------------------------------------
    @abstractmethod
    def get(
        self, queues: Sequence[str], *, max_messages: int = 1, timeout: float | None = None
    ) -> list[Delivery]:
        """Take up to ``max_messages`` ready messages from ``queues``.

        Higher priority first within a queue (the broker's own meaning of priority), queues
        served fairly (round robin). Blocks up to ``timeout`` seconds when nothing is ready
        (``None``: do not block) and returns ``[]`` if still nothing.
        """

    @abstractmethod
    def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Acknowledge deliveries made by this transport."""

    @abstractmethod
    def reject(self, deliveries: Sequence[Delivery], *, requeue: bool = False) -> None:
        """Reject deliveries; with ``requeue`` they go back to the end of their queue."""

    def restore(self, deliveries: Sequence[Delivery]) -> None:
        """Give unprocessed deliveries back (warm shutdown); they are delivered again first.

        A default that is right for every broker (a requeueing reject); brokers that can put
        them back at the head of their queue override it."""
        self.reject(deliveries, requeue=True)

    def qos(self, prefetch_count: int) -> None:  # noqa: B027 - optional hook
        """The consumer's prefetch window is now ``prefetch_count`` messages (0: unlimited).

        Push-based brokers (AMQP) let the broker send that many unacknowledged messages ahead
        (``basic.qos``); pull-based transports need nothing, ``get(max_messages=)`` suffices.
        A no-op by default because that is the right behaviour for every pull-based broker,
        and the consumer calls it on every transport.
        """

    def abandon(self) -> None:
        """Any thread: nobody waits for this connection any more (an orphaned prefork child).
        A reconnect wait in progress ends, and every later operation that would wait to
        reconnect fails at once with its connection error instead.

        Every broker has it (the base sets ``_abandoned``, which the reconnect loops of the
        implementations consult); a broker without reconnect waits has nothing more to do."""
        self._abandoned.set()

    # -- queue admin ---------------------------------------------------------------------
    @abstractmethod
    def purge(self, queue: str) -> int:
        """Delete every ready message of ``queue``; return how many."""

    @abstractmethod
    def size(self, queue: str) -> int:
        """Number of ready messages in ``queue``."""


class FanoutSubscription(ABC):
    """A live subscription to a fanout exchange (made by the ``Fanout`` capability)."""

    @abstractmethod
    def get(self, timeout: float | None = None) -> list[Message]:
        """Messages published since the last call (waits up to ``timeout`` for the first).

        A lost connection raises its error once; the next call subscribes again (what was
        published while away is not seen) or raises again while the broker is unreachable.
        """

    @abstractmethod
    def close(self) -> None:
        """Stop receiving."""


# -- shared routing helpers for virtual brokers (bindings kept by the transport) -----------------
def route(exchange_type: str, bindings: Iterable[tuple[str, str]], routing_key: str) -> list[str]:
    """Queues that a message with ``routing_key`` reaches through ``(binding_key, queue)`` pairs.

    ``direct`` (also any unknown type, as kombu does) needs an exact key, ``topic`` matches AMQP
    wildcards and ``fanout`` reaches every bound queue. Order is kept, duplicates dropped.
    """
    if exchange_type == "fanout":
        hits = [queue for _key, queue in bindings]
    elif exchange_type == "topic":
        hits = [queue for key, queue in bindings if topic_matches(key, routing_key)]
    else:
        hits = [queue for key, queue in bindings if key == routing_key]
    return list(dict.fromkeys(hits))


@lru_cache(maxsize=4096)
def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic match: words split on ``.``; ``*`` is one word, ``#`` zero or more words."""
    return _words_match(tuple(pattern.split(".")), tuple(routing_key.split(".")))


def _words_match(pattern: tuple[str, ...], words: tuple[str, ...]) -> bool:
    if not pattern:
        return not words
    head = pattern[0]
    if head == "#":
        # Either '#' stands for nothing, or it swallows one more word and stays.
        return _words_match(pattern[1:], words) or (
            bool(words) and _words_match(pattern, words[1:])
        )
    if not words:
        return False
    return (head in ("*", words[0])) and _words_match(pattern[1:], words[1:])


def routed_rows(
    items: Sequence[tuple[Message, str, str]],
    encode: Callable[[Message], tuple[Any, ...]],
    targets: Callable[[str, str], list[str]],
    visible_at: float,
) -> list[tuple[Any, ...]]:
    """Rows ``(queue, *encode(message), exchange, routing_key, visible_at)`` for every queue
    each message is routed to, for the brokers that keep messages in a table (SQLite,
    PostgreSQL). Encoding happens first, so a bad message fails before anything is written;
    each (exchange, routing key) is resolved once per batch."""
    encoded = [(encode(message), exchange, key) for message, exchange, key in items]
    routes: dict[tuple[str, str], list[str]] = {}
    rows: list[tuple[Any, ...]] = []
    for fields, exchange, key in encoded:
        queues = routes.get((exchange, key))
        if queues is None:
            queues = routes[(exchange, key)] = targets(exchange, key)
        rows.extend((queue, *fields, exchange, key, visible_at) for queue in queues)
    return rows


def fair_order(queues: Sequence[str], last_served: str | None) -> list[str]:
    """``queues`` rotated so the one after ``last_served`` comes first (round robin)."""
    if last_served is None or last_served not in queues:
        return list(queues)
    start = list(queues).index(last_served) + 1
    return [*queues[start:], *queues[:start]]


__all__ = [
    "Delivery",
    "FanoutSubscription",
    "Transport",
    "fair_order",
    "route",
    "topic_matches",
]
