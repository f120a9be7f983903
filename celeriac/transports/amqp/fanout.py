"""Fanout subscriptions on AMQP: an exclusive, auto-deleted queue bound to the exchange.

Each subscription has its own connection, so a monitor thread can wait on it while the owning
transport consumes tasks on another thread (py-amqp connections are not thread-safe). Messages
are taken with ``no_ack``: at most once, nothing kept after the subscriber leaves.
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
from celeriac.transports.amqp.conn import AMQPParams, connect, drop
from celeriac.transports.base import FanoutSubscription


class AMQPSubscription(FanoutSubscription):
    """One subscriber queue (``<exchange>.<uuid>``) bound with ``pattern``."""

    def __init__(self, params: AMQPParams, exchange: Exchange, pattern: str) -> None:
        self._lock = threading.Lock()
        self._received: list[Message] = []
        self.queue = f"{exchange.name}.{uuid.uuid4()}"
        self._conn: amqp.Connection | None = connect(params)
        try:
            channel = self._conn.channel()
            channel.auto_decode = False
            topology.declare_exchange_leniently(channel, exchange)
            channel.queue_declare(self.queue, durable=False, exclusive=True, auto_delete=True)
            channel.queue_bind(self.queue, exchange.name, pattern)
            channel.basic_consume(self.queue, no_ack=True, callback=self._on_message)
        except Exception:
            drop(self._conn, graceful=False)
            raise

    def _on_message(self, raw: amqp.Message) -> None:
        self._received.append(from_amqp(raw)[0])

    def get(self, timeout: float | None = None) -> list[Message]:
        deadline = time.monotonic() + (timeout or 0.0)
        with self._lock:
            conn = self._conn
            if conn is None:
                return []
            self._read(conn, 0.0)
            while not self._received:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._read(conn, min(remaining, 1.0))
                conn.heartbeat_tick()
            self._read(conn, 0.0)
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
            conn, self._conn = self._conn, None
            drop(conn, graceful=True)


__all__ = ["AMQPSubscription"]
