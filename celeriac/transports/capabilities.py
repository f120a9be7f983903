"""What only some brokers can do: one small Protocol per capability.

:class:`~celeriac.transports.base.Transport` states what every broker does. A broker that can
do more implements one of these Protocols as well (plain methods, no registration), and a
caller asks ``isinstance(transport, Defers)`` before using it, never ``getattr``. Each
capability has its own conformance module, ``tests/conformance/test_cap_<name>.py``, run on
exactly the transports that claim it.

Behaviour flags that qualify a method every transport has (``supports_priority``,
``supports_delayed_delivery``, ``priority_higher_first``, ``direct_consume``,
``returns_on_close``) stay ``ClassVar`` flags on the base: ``isinstance`` against a Protocol
checks that a member exists, not its value, so it cannot express them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from celeriac.protocol.message import Message
from celeriac.transports.base import Delivery, FanoutSubscription


@runtime_checkable
class AckAndGet(Protocol):
    """Acknowledge and fetch in one round trip (Redis: the pop script acks first).

    The consumer sends its pending acks with each refill of its prefetch window instead of
    two calls. Semantics are exactly :meth:`Transport.ack` of ``acks`` followed by a
    non-blocking :meth:`Transport.get` of up to ``max_messages`` from ``queues``; with
    ``max_messages < 1`` or no queues it only acknowledges and returns ``[]``.
    """

    def ack_and_get(
        self, queues: Sequence[str], acks: Sequence[Delivery], *, max_messages: int
    ) -> list[Delivery]: ...


@runtime_checkable
class Leases(Protocol):
    """Deliveries are leased: one not acknowledged within ``visibility_timeout`` seconds is
    delivered again (to any consumer), unless its holder renews the lease with :meth:`extend`.

    Brokers with a native notion of a consumer (AMQP; the in-process memory broker) hold a
    delivery for as long as its connection lives and do not implement this.
    """

    #: Seconds a delivery stays with its consumer without renewal (transport option).
    visibility_timeout: float

    def extend(self, deliveries: Sequence[Delivery]) -> None:
        """Renew the lease of held ``deliveries`` for another ``visibility_timeout`` seconds.
        Deliveries this transport no longer holds (settled, or taken back) are ignored."""


@runtime_checkable
class ConfirmsLeases(Protocol):
    """Leased deliveries whose holder can ask whether each is still its own: a consumer that
    was stalled (frozen, swapped out) past ``visibility_timeout`` must not run a message
    another consumer may have taken meanwhile."""

    @property
    def lease_period(self) -> float:
        """Seconds a held delivery stays this consumer's without a sign of life from it:
        ``visibility_timeout`` where deliveries are leased, the heartbeat on RabbitMQ (whose
        server closes a silent connection and requeues what it held); 0 when unbounded."""
        ...

    def confirm(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        """Renew the lease of those ``deliveries`` this consumer still holds and return them;
        the others (their lease ran out and the broker took them back) are left out."""
        ...


@runtime_checkable
class GivesBackPrefetched(Protocol):
    """The broker pushes messages to a consumer ahead of ``get`` (AMQP prefetch, sized by
    :meth:`Transport.qos`), and the transport can give them back.

    Pull-based transports hold nothing ahead, so they do not claim this: a prefork child
    only watches for long tasks when its transport does.
    """

    def release_prefetched(self) -> int | None:
        """Stop taking pushed messages and give back, at their place in their queues, what
        the broker pushed ahead that ``get`` has not returned yet; the next ``get`` takes
        messages again. Any thread may call it while the connection's owner runs a long task,
        so that those messages go to idle consumers instead of waiting behind it (Celery's
        ``-O fair``). Returns how many were given back, or ``None`` when the connection was
        in use (ask again later). Nothing delivered by ``get`` is given back or repeated."""
        ...


@runtime_checkable
class Defers(Protocol):
    """A delivered message can be parked in the broker until a later time."""

    def defer(self, delivery: Delivery, until: float) -> None:
        """Park a delivered message in the broker until ``until`` (Unix time), in place of it.

        Used by workers for messages whose ETA is far away (``worker_eta_defer_after``), so
        they are neither held in worker memory nor redelivered by a visibility timeout. The
        message must stay invisible until then and keep its content; the delivery is settled
        (closing the transport does not bring it back early).
        """


@runtime_checkable
class Fanout(Protocol):
    """Broadcast without storage, for events and remote control (Celery's pidbox)."""

    def fanout_publish(self, exchange: str, message: Message, routing_key: str = "") -> None:
        """Publish to every current subscriber of a fanout exchange (at most once, no storage:
        a subscription made later does not see it)."""

    def fanout_subscribe(self, exchange: str, pattern: str = "#") -> FanoutSubscription:
        """Subscribe to a fanout exchange; ``pattern`` filters routing keys with AMQP topic
        wildcards (``#`` or ``""``: all)."""
        ...


@runtime_checkable
class PublishesEnvelopes(Protocol):
    """The broker keeps kombu's JSON envelope as the message itself (Redis lists): a producer
    that wrote the envelope text (a plain ``delay()``, :mod:`celeriac.protocol.stencil`)
    hands it over as it is, skipping the :class:`Message` round."""

    def publish_envelopes(self, items: Sequence[tuple[str, str, int]]) -> None:
        """Publish each ``(envelope text, queue, priority)`` to its queue through the default
        exchange, in order, in one round trip; retried as :meth:`Transport.publish` is."""
        ...


__all__ = [
    "AckAndGet",
    "ConfirmsLeases",
    "Defers",
    "Fanout",
    "GivesBackPrefetched",
    "Leases",
    "PublishesEnvelopes",
]
