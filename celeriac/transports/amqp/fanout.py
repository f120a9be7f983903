"""Fanout subscriptions on AMQP: an exclusive, auto-deleted queue bound to the exchange.

Each subscription has its own connection, so a monitor thread can wait on it while the owning
transport consumes tasks on another thread (py-amqp connections are not thread-safe). Messages
are taken with ``no_ack``: at most once, nothing kept after the subscriber leaves.

A lost connection (the server restarted, the network cut, missed heartbeats) is dropped when
a read fails; the next :meth:`AMQPSubscription.get` subscribes again on a new connection with
a new queue (the old exclusive queue may linger until the server notices the old connection
is gone). What was broadcast in between is not seen: at most once.
"""

from __future__ import annotations

import threading
import time
import uuid

import amqp

from celeriac.protocol.entities import Exchange
from celeriac.protocol.message import Message
from celeriac.transports.amqp import topology
from celeriac.transports.amqp.codec import from_amqp
from celeriac.transports.amqp.conn import CONNECTION_ERRORS, AMQPParams, connect, drop
from celeriac.transports.base import FanoutSubscription


class AMQPSubscription(FanoutSubscription):
    """One subscriber queue (``<exchange>.<uuid>``) bound with ``pattern``."""

    def __init__(self, params: AMQPParams, exchange: Exchange, pattern: str) -> None:
        self._lock = threading.Lock()
        self._received: list[Message] = []
        self._params, self._exchange, self._pattern = params, exchange, pattern
        self._closed = False
        self.queue = ""
        self._conn: amqp.Connection | None = self._subscribe()

    def _subscribe(self) -> amqp.Connection:
        """A new connection with a new subscriber queue bound to the exchange."""
        conn = connect(self._params)
        queue = f"{self._exchange.name}.{uuid.uuid4()}"
        try:
            channel = conn.channel()
            channel.auto_decode = False
            topology.declare_exchange_leniently(channel, self._exchange)
            channel.queue_declare(queue, durable=False, exclusive=True, auto_delete=True)
            channel.queue_bind(queue, self._exchange.name, self._pattern)
            channel.basic_consume(queue, no_ack=True, callback=self._on_message)
        except Exception:
            drop(conn, graceful=False)
            raise
        self.queue = queue
        return conn

    def _on_message(self, raw: amqp.Message) -> None:
        self._received.append(from_amqp(raw)[0])

    def get(self, timeout: float | None = None) -> list[Message]:
        deadline = time.monotonic() + (timeout or 0.0)
        with self._lock:
            if self._closed:
                return []
            conn = self._conn
            if conn is None:  # lost earlier: subscribe again (raises while still down)
                conn = self._conn = self._subscribe()
            try:
                self._read(conn, 0.0)
                while not self._received:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._read(conn, min(remaining, 1.0))
                    conn.heartbeat_tick()
                self._read(conn, 0.0)
            except CONNECTION_ERRORS:
                self._conn = None
                drop(conn, graceful=False)
                raise
            received, self._received = self._received, []
            return received

    @staticmethod
    def _read(conn: amqp.Connection, timeout: float) -> None:
        try:
            while True:
                conn.drain_events(timeout=timeout)
                timeout = 0.0
        except TimeoutError:
            return

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conn, self._conn = self._conn, None
            drop(conn, graceful=True)


__all__ = ["AMQPSubscription"]
