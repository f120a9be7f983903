"""Publisher confirms for one channel: publish many, then wait once for all their acks.

RabbitMQ numbers the messages published on a channel in confirm mode 1, 2, 3...; it answers
``basic.ack`` / ``basic.nack`` for each (or ``multiple`` for all up to a tag). Waiting for the
acks of a batch costs one round trip per batch instead of one per message, and once they are
in, the messages are in their queues: a ``get`` or ``size`` from any connection sees them.

Three modes:

* ``confirm_publish``: every publish waits for its acks (kombu's option).
* A transport that reads (a worker, an admin command, a test): the channel is in confirm mode
  from its first publish, and the transport waits for the acks before each read (or when 1000
  are outstanding), so it always reads its own writes.
* A send-only transport (``Transport.send_only``: the producer's pool, the rpc:// result
  publisher), as Celery by default: no confirm mode, so RabbitMQ does not answer every
  publish (about 0.1 ms per ``delay().get()`` on both sides). Should it read after all, it
  switches to confirm mode then: its reads see every publish after the switch, and those
  before it once RabbitMQ has put them in their queues (a queue's message count can lag
  them for a moment: RabbitMQ answers it ahead of deliveries still on their way).

Requeued copies and control messages always wait for their acks.
"""

from __future__ import annotations

import time

import amqp

from celeriac.exceptions import OperationalError


class Confirms:
    """Tracks the unconfirmed publishes of one confirm-mode channel."""

    def __init__(self, connection: amqp.Connection, channel: amqp.Channel) -> None:
        self._connection = connection
        self._next_tag = 1
        self._pending: set[int] = set()
        self._nacked = 0
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)
        channel.confirm_select()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def published(self) -> None:
        """Record one ``basic.publish`` just sent on the channel."""
        self._pending.add(self._next_tag)
        self._next_tag += 1

    def _settled(self, tag: int, multiple: bool) -> int:
        done = {t for t in self._pending if t <= tag} if multiple else {tag} & self._pending
        self._pending -= done
        return len(done)

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self._settled(delivery_tag, multiple)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._nacked += self._settled(delivery_tag, multiple)

    def wait(self, timeout: float) -> None:
        """Block until every publish so far is confirmed.

        Raises:
            OperationalError: the broker refused (nacked) some, or did not answer in time.
        """
        deadline = time.monotonic() + timeout
        while self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise OperationalError(
                    f"The broker did not confirm {len(self._pending)} published message(s) "
                    f"within {timeout} s"
                )
            try:
                self._connection.drain_events(timeout=remaining)
            except TimeoutError:
                continue
        nacked, self._nacked = self._nacked, 0
        if nacked:
            raise OperationalError(f"The broker refused (nacked) {nacked} published message(s)")


#: Unconfirmed publishes allowed before a publish waits for the broker's confirms.
MAX_UNCONFIRMED = 1000


class Publisher:
    """One connection's publishing channel and its confirm mode (see the module text)."""

    def __init__(
        self,
        connection: amqp.Connection,
        channel: amqp.Channel,
        *,
        always: bool,
        lazy: bool,
        timeout: float,
    ) -> None:
        self._connection = connection
        self._channel = channel
        self._always = always
        self._timeout = timeout
        eager = always or not lazy
        self.confirms: Confirms | None = Confirms(connection, channel) if eager else None
        self._published = False  # sent outside confirm mode since the channel opened

    def send(self, raw: amqp.Message, exchange: str, routing_key: str) -> None:
        self._channel.basic_publish(raw, exchange=exchange, routing_key=routing_key)
        if self.confirms is not None:
            self.confirms.published()
        else:
            self._published = True

    def send_confirmed(self, raw: amqp.Message, exchange: str, routing_key: str) -> None:
        """Publish and return once the broker has it in its queues (requeued copies,
        control messages)."""
        self._confirming()
        self.send(raw, exchange, routing_key)
        self.wait()

    def after_batch(self) -> None:
        """A batch was sent: wait for it with ``confirm_publish`` or when too many are out."""
        if self._always or self.unconfirmed > MAX_UNCONFIRMED:
            self.wait()

    def read_own_writes(self) -> None:
        """Before reading: wait until this connection's publishes are in their queues."""
        if self._published:
            self._confirming()
        if self.unconfirmed:
            self.wait()

    @property
    def unconfirmed(self) -> int:
        return self.confirms.pending if self.confirms is not None else 0

    def wait(self) -> None:
        if self.confirms is not None:
            self.confirms.wait(self._timeout)

    def _confirming(self) -> None:
        """Enter confirm mode (once); every later publish is confirmed."""
        if self.confirms is None:
            self.confirms = Confirms(self._connection, self._channel)
            self._published = False


def multiple_ack_tag(tags: list[int], unsettled: set[int]) -> int:
    """The tag for one ``basic.ack(multiple=True)`` settling exactly ``tags`` (0: none).

    It may be used when every tag still unsettled on the channel up to the highest of
    ``tags`` is one of them: the worker's batch of early acks, in delivery order, usually is.
    """
    if len(tags) < 2:
        return 0
    top, wanted = max(tags), set(tags)
    return top if all(tag in wanted for tag in unsettled if tag <= top) else 0


__all__ = ["MAX_UNCONFIRMED", "Confirms", "Publisher", "multiple_ack_tag"]
