"""Push mode on one AMQP channel: a consumer per queue, and per queue the deliveries the
broker pushed that ``get`` has not returned yet (taken round robin across queues)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from functools import partial

import amqp

from celeriac.transports.base import Delivery, fair_order


class Consumers:
    """The consumer tags of one channel and their buffers; ``on_message(queue, raw)`` makes
    a delivery of a pushed message and hands it to :meth:`add`."""

    def __init__(self, on_message: Callable[[str, amqp.Message], None]) -> None:
        self._on_message = on_message
        self.tags: dict[str, str] = {}  # queue -> consumer tag
        self.buffers: dict[str, deque[Delivery]] = {}
        self.last_served: str | None = None  # the fair order across gets (pull mode's too)

    def clear(self) -> None:
        """The connection is gone: the broker gives back what the buffers held."""
        self.tags.clear()
        self.buffers.clear()

    def add(self, queue: str, delivery: Delivery) -> None:
        self.buffers.setdefault(queue, deque()).append(delivery)

    def consume(self, channel: amqp.Channel, queues: Sequence[str]) -> list[Delivery]:
        """Consume from exactly ``queues``; return what the dropped ones held (to give back)."""
        dropped = self.cancel(channel, [q for q in self.tags if q not in queues])
        for name in queues:
            if name not in self.tags:
                callback = partial(self._on_message, name)
                self.tags[name] = channel.basic_consume(name, callback=callback)
        return dropped

    def cancel(self, channel: amqp.Channel, queues: Sequence[str]) -> list[Delivery]:
        """Cancel the consumers of ``queues`` and return what their buffers held, including
        deliveries that were still on the way (``basic.cancel`` waits for its answer)."""
        held: list[Delivery] = []
        for name in queues:
            channel.basic_cancel(self.tags.pop(name))
            held += self.buffers.pop(name, ())
        return held

    def buffered(self, queues: Sequence[str]) -> bool:
        buffers = self.buffers
        return any(buffers.get(q) for q in queues)

    def take(self, queues: Sequence[str], limit: int) -> list[Delivery]:
        """Up to ``limit`` buffered deliveries, round robin across ``queues``."""
        taken: list[Delivery] = []
        while len(taken) < limit and self.buffered(queues):
            for name in fair_order(queues, self.last_served):
                buffer = self.buffers.get(name)
                if buffer and len(taken) < limit:
                    taken.append(buffer.popleft())
                    self.last_served = name
        return taken


__all__ = ["Consumers"]
