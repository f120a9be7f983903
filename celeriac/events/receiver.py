"""``EventReceiver``: reads events from the ``celeryev`` exchange, as Celery's receiver does.

``EventReceiver(connection, handlers={"task-succeeded": fn, "*": every})`` subscribes to the
transport's fanout (an exclusive queue on AMQP, PSUBSCRIBE on Redis, the fanout log of the
embedded broker) and calls the handler of each event's type, else ``"*"``'s. A message whose
body is a list (``task.multi``) is each of its events in turn. Timestamps are moved into this
host's time zone and ``local_received`` added; ``task-sent`` takes the receiver's clock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from celeriac.events.event import EXCHANGE_NAME, adjust_timestamp
from celeriac.protocol import serialization
from celeriac.transports.capabilities import Fanout

if TYPE_CHECKING:
    from celeriac.protocol.message import Message
    from celeriac.transports.base import FanoutSubscription, Transport

logger = logging.getLogger("celeriac.events")

Handler = Callable[[dict[str, Any]], Any]
#: Celery's CLIENT_CLOCK_SKEW: a task-sent event is given the receiver's clock minus one.
CLIENT_CLOCK_SKEW = -1
#: How long one read of the subscription blocks (seconds).
POLL = 0.5
#: How long to wait before reading again after a read failed (the broker went away).
RETRY = 1.0


class EventReceiver:
    """Capture events: ``capture(limit=None, timeout=None, wakeup=True)``."""

    def __init__(
        self,
        channel: Transport,
        handlers: Mapping[str, Handler] | None = None,
        routing_key: str = "#",
        node_id: str | None = None,
        app: Any = None,
        queue_prefix: str | None = None,
        accept: list[str] | None = None,
        exchange: str = EXCHANGE_NAME,
        wakeup: Callable[[], Any] | None = None,
    ) -> None:
        self.connection = channel
        self.handlers: dict[str, Handler] = dict(handlers or {})
        self.routing_key = routing_key
        self.node_id = node_id
        self.app = app
        self.accept = accept
        self.exchange = exchange
        self.clock = 0
        self.should_stop = False
        self._wakeup = wakeup
        self._subscription: FanoutSubscription | None = None

    # -- the subscription ------------------------------------------------------------------
    def subscribe(self) -> FanoutSubscription:
        """Start listening (events sent before this are not seen); idempotent."""
        if self._subscription is None:
            transport = self.connection
            if not isinstance(transport, Fanout):
                raise TypeError(f"{type(transport).__name__} has no fanout: it carries no events")
            transport.open()
            self._subscription = transport.fanout_subscribe(self.exchange, self.routing_key)
        return self._subscription

    def close(self) -> None:
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            subscription.close()

    def __enter__(self) -> EventReceiver:
        self.subscribe()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- capturing -------------------------------------------------------------------------
    def capture(
        self, limit: int | None = None, timeout: float | None = None, wakeup: bool = True
    ) -> None:
        """Process events until :attr:`should_stop`, ``limit`` messages, or ``timeout``
        seconds without one (then ``TimeoutError``, Celery's ``socket.timeout``)."""
        for _ in self.itercapture(limit=limit, timeout=timeout, wakeup=wakeup):
            pass

    def itercapture(
        self, limit: int | None = None, timeout: float | None = None, wakeup: bool = True
    ) -> Iterator[None]:
        """Like :meth:`capture`, yielding after each message."""
        subscription = self.subscribe()
        if wakeup:
            self.wakeup_workers()
        seen = 0
        idle_since = time.monotonic()
        failing = False  # the broker is away: one warning, then one line when it is back
        while not self.should_stop and (limit is None or seen < limit):
            try:
                messages = subscription.get(timeout=POLL if timeout is None else min(POLL, timeout))
            except Exception as exc:  # a lost connection: the next get() subscribes again
                (logger.debug if failing else logger.warning)(
                    "Reading events failed (retrying every %s s): %r", RETRY, exc
                )
                failing = True
                messages = []
                time.sleep(RETRY)
            else:
                if failing:
                    failing = False
                    logger.warning("Reading events again")
            if not messages:
                if timeout is not None and time.monotonic() - idle_since >= timeout:
                    raise TimeoutError(f"no event within {timeout} s")
                continue
            idle_since = time.monotonic()
            for message in messages:
                self.receive_message(message)
                seen += 1
                yield None
                if self.should_stop or (limit is not None and seen >= limit):
                    return

    def wakeup_workers(self) -> None:
        """Ask every worker for a heartbeat now (Celery's ``heartbeat`` broadcast)."""
        try:
            if self._wakeup is not None:
                self._wakeup()
            elif self.app is not None:
                self.app.control.broadcast("heartbeat", connection=self.connection, reply=False)
        except Exception as exc:  # a monitor starts even when no worker listens
            logger.debug("Waking up workers failed: %r", exc)

    # -- one message -----------------------------------------------------------------------
    def receive_message(self, message: Message) -> None:
        try:
            body = serialization.loads(
                message.body, message.content_type, message.content_encoding, accept=self.accept
            )
        except Exception as exc:
            logger.warning("Undecodable event message: %r", exc)
            return
        self.receive(body)

    def receive(self, body: Any) -> None:
        """One event, or a list of them (``task.multi``)."""
        events = body if isinstance(body, list) else [body]
        for event in events:
            if isinstance(event, dict) and "type" in event:
                type_, event = self.event_from_message(event)
                self.process(type_, event)

    def process(self, type: str, event: dict[str, Any]) -> None:
        handler = self.handlers.get(type) or self.handlers.get("*")
        if handler is not None:
            handler(event)

    def event_from_message(
        self, body: dict[str, Any], localize: bool = True, now: Callable[[], float] = time.time
    ) -> tuple[str, dict[str, Any]]:
        type_ = str(body["type"])
        if type_ == "task-sent":
            # The sender's clock is not ours to follow (Celery: the client's clock skew).
            body["clock"] = (self.clock or 1) + CLIENT_CLOCK_SKEW
        else:
            clock = body.get("clock")
            if isinstance(clock, int):
                self.clock = max(self.clock, clock) + 1
        if localize:
            try:
                offset, timestamp = float(body["utcoffset"]), float(body["timestamp"])
            except (KeyError, TypeError, ValueError):
                pass
            else:
                body["timestamp"] = adjust_timestamp(timestamp, offset)
        body["local_received"] = now()
        return type_, body


__all__ = ["EventReceiver"]
