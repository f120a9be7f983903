"""The in-process broker: ``memory://`` or ``memory://<name>``.

Every :class:`MemoryTransport` with the same name in one process shares one broker state, so a
producer and an in-thread worker see the same queues; different names are separate namespaces.
Nothing survives the process. Priorities follow AMQP: a larger ``priority`` property is served
first, FIFO within one priority. ``not_before`` keeps a message invisible until that Unix time.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from celeriac.protocol.entities import Exchange, Queue
from celeriac.protocol.message import Message
from celeriac.transports.base import (
    Delivery,
    FanoutSubscription,
    Transport,
    fair_order,
    route,
    topic_matches,
)

#: A subscriber that never reads keeps at most this many fanout messages (oldest dropped).
FANOUT_BUFFER = 10_000


@dataclass(slots=True)
class _Entry:
    """A message waiting in (or taken from) one queue; ``seq`` orders it within its priority."""

    message: Message
    queue: str
    exchange: str
    routing_key: str
    seq: int
    redelivered: bool = False


class _Broker:
    """The state shared by every transport of one name. All access holds ``cond``."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.queues: dict[str, list[tuple[int, int, _Entry]]] = {}
        self.delayed: list[tuple[float, int, _Entry]] = []
        self.bindings: dict[str, list[tuple[str, str]]] = {}
        self.exchanges: dict[str, Exchange] = {}
        self.subscriptions: dict[str, list[_MemorySubscription]] = {}
        self.counter = itertools.count(1)

    def push(self, entry: _Entry) -> None:
        heap = self.queues.setdefault(entry.queue, [])
        heapq.heappush(heap, (-entry.message.priority, entry.seq, entry))

    def promote_due(self, now: float) -> float | None:
        """Move delayed entries whose time came into their queues; return the next due time."""
        while self.delayed and self.delayed[0][0] <= now:
            self.push(heapq.heappop(self.delayed)[2])
        return self.delayed[0][0] if self.delayed else None

    def delayed_in(self, queue: str) -> int:
        return sum(1 for _due, _seq, entry in self.delayed if entry.queue == queue)


_BROKERS: dict[str, _Broker] = {}
_BROKERS_LOCK = threading.Lock()


def _broker_named(name: str) -> _Broker:
    with _BROKERS_LOCK:
        broker = _BROKERS.get(name)
        if broker is None:
            broker = _BROKERS[name] = _Broker()
        return broker


class MemoryTransport(Transport):
    """A thread-safe in-process broker (tests, eager-ish setups, one-process apps)."""

    schemes = ("memory",)
    supports_priority = True
    supports_delayed_delivery = True
    priority_higher_first = True

    def __init__(self, url: str = "memory://", options: Mapping[str, Any] | None = None) -> None:
        super().__init__(url, options)
        self.name = url.partition("://")[2].strip("/")
        self._broker = _broker_named(self.name)
        self._unacked: dict[str, _Entry] = {}
        self._last_served: str | None = None

    # -- lifecycle -----------------------------------------------------------------------
    def open(self) -> None:
        """Nothing to connect to."""

    def close(self) -> None:
        """Give back every message this transport took and did not acknowledge."""
        with self._broker.cond:
            held = list(self._unacked.values())
            self._unacked.clear()
            self._put_back(held, to_front=True)

    # -- topology ------------------------------------------------------------------------
    def declare_exchange(self, exchange: Exchange) -> None:
        super().declare_exchange(exchange)
        if exchange.name:
            with self._broker.cond:
                self._broker.exchanges[exchange.name] = exchange

    def declare_queue(self, queue: Queue) -> None:
        with self._broker.cond:
            self._broker.queues.setdefault(queue.name, [])
        if queue.exchange is not None and queue.exchange.name:
            self.declare_exchange(queue.exchange)
            self.bind(queue.name, queue.exchange.name, queue.key)

    def bind(self, queue: str, exchange: str, routing_key: str) -> None:
        with self._broker.cond:
            self._broker.queues.setdefault(queue, [])
            table = self._broker.bindings.setdefault(exchange, [])
            if (routing_key, queue) not in table:
                table.append((routing_key, queue))

    def _targets(self, exchange: str, routing_key: str) -> list[str]:
        """Queues reached by a publish; caller holds the lock."""
        if not exchange:
            return [routing_key]
        declared = self.exchanges.get(exchange) or self._broker.exchanges.get(exchange)
        kind = declared.type if declared is not None else "direct"
        return route(kind, self._broker.bindings.get(exchange, ()), routing_key)

    # -- producing -----------------------------------------------------------------------
    def publish_many(
        self, items: Sequence[tuple[Message, str, str]], *, not_before: float | None = None
    ) -> None:
        broker = self._broker
        delayed = not_before is not None and not_before > time.time()
        with broker.cond:
            for message, exchange, routing_key in items:
                for queue in self._targets(exchange, routing_key):
                    entry = _Entry(message, queue, exchange, routing_key, next(broker.counter))
                    if delayed:
                        assert not_before is not None
                        heapq.heappush(broker.delayed, (not_before, entry.seq, entry))
                    else:
                        broker.push(entry)
            broker.cond.notify_all()

    # -- consuming -----------------------------------------------------------------------
    def get(
        self, queues: Sequence[str], *, max_messages: int = 1, timeout: float | None = None
    ) -> list[Delivery]:
        if max_messages < 1 or not queues:
            return []
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._broker.cond:
            while True:
                next_due = self._broker.promote_due(time.time())
                taken = self._take(queues, max_messages)
                if taken or deadline is None:
                    return taken
                wait = deadline - time.monotonic()
                if wait <= 0:
                    return []
                if next_due is not None:
                    wait = min(wait, max(next_due - time.time(), 0.0))
                self._broker.cond.wait(wait)

    def _take(self, queues: Sequence[str], limit: int) -> list[Delivery]:
        """Pop up to ``limit`` entries, queues in round-robin order; caller holds the lock."""
        taken: list[Delivery] = []
        for name in fair_order(queues, self._last_served):
            if len(taken) >= limit:
                break
            heap = self._broker.queues.get(name)
            if not heap:
                continue
            self._last_served = name
            while heap and len(taken) < limit:
                entry = heapq.heappop(heap)[2]
                tag = str(entry.seq)
                self._unacked[tag] = entry
                taken.append(self._delivery(entry, tag))
        return taken

    def _delivery(self, entry: _Entry, tag: str) -> Delivery:
        return Delivery(
            message=entry.message,
            queue=entry.queue,
            exchange=entry.exchange,
            routing_key=entry.routing_key,
            delivery_tag=tag,
            redelivered=entry.redelivered,
            transport=self,
        )

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        with self._broker.cond:
            for delivery in deliveries:
                self._unacked.pop(delivery.delivery_tag, None)

    def reject(self, deliveries: Sequence[Delivery], *, requeue: bool = False) -> None:
        with self._broker.cond:
            held = self._release(deliveries)
            if requeue:
                self._put_back(held, to_front=False)

    def restore(self, deliveries: Sequence[Delivery]) -> None:
        with self._broker.cond:
            self._put_back(self._release(deliveries), to_front=True)

    def defer(self, delivery: Delivery, until: float) -> None:
        with self._broker.cond:
            for entry in self._release([delivery]):
                heapq.heappush(self._broker.delayed, (until, entry.seq, entry))
            self._broker.cond.notify_all()

    def _release(self, deliveries: Sequence[Delivery]) -> list[_Entry]:
        popped = (self._unacked.pop(d.delivery_tag, None) for d in deliveries)
        return [entry for entry in popped if entry is not None]

    def _put_back(self, entries: list[_Entry], *, to_front: bool) -> None:
        """Requeue; ``to_front`` keeps each entry's original place, else it goes to the end."""
        for entry in entries:
            entry.redelivered = True
            if not to_front:
                entry.seq = next(self._broker.counter)
            self._broker.push(entry)
        if entries:
            self._broker.cond.notify_all()

    # -- queue admin ---------------------------------------------------------------------
    def purge(self, queue: str) -> int:
        broker = self._broker
        with broker.cond:
            count = len(broker.queues.get(queue, ())) + broker.delayed_in(queue)
            broker.queues[queue] = []
            broker.delayed = [item for item in broker.delayed if item[2].queue != queue]
            heapq.heapify(broker.delayed)
            return count

    def size(self, queue: str) -> int:
        """Waiting messages of ``queue``, delayed ones included (held ones are not)."""
        with self._broker.cond:
            return len(self._broker.queues.get(queue, ())) + self._broker.delayed_in(queue)

    # -- fanout --------------------------------------------------------------------------
    def fanout_publish(self, exchange: str, message: Message, routing_key: str = "") -> None:
        with self._broker.cond:
            for subscription in self._broker.subscriptions.get(exchange, ()):
                if topic_matches(subscription.pattern, routing_key):
                    subscription.buffer.append(message)
            self._broker.cond.notify_all()

    def fanout_subscribe(self, exchange: str, pattern: str = "#") -> FanoutSubscription:
        subscription = _MemorySubscription(self._broker, exchange, pattern or "#")
        with self._broker.cond:
            self._broker.subscriptions.setdefault(exchange, []).append(subscription)
        return subscription


class _MemorySubscription(FanoutSubscription):
    """One subscriber's buffer of fanout messages."""

    def __init__(self, broker: _Broker, exchange: str, pattern: str) -> None:
        self._broker = broker
        self.exchange = exchange
        self.pattern = pattern
        self.buffer: deque[Message] = deque(maxlen=FANOUT_BUFFER)

    def get(self, timeout: float | None = None) -> list[Message]:
        deadline = time.monotonic() + (timeout or 0.0)
        with self._broker.cond:
            while not self.buffer:
                wait = deadline - time.monotonic()
                if wait <= 0:
                    return []
                self._broker.cond.wait(wait)
            messages = list(self.buffer)
            self.buffer.clear()
            return messages

    def close(self) -> None:
        with self._broker.cond:
            subscribers = self._broker.subscriptions.get(self.exchange, [])
            if self in subscribers:
                subscribers.remove(self)


__all__ = ["MemoryTransport"]
