"""Fanout over Redis PUB/SUB, as kombu does it: ``PSUBSCRIBE /<db>.<exchange>/<key>``.

Delivery is at most once and only to subscribers connected at publish time (no storage).
Redis glob ``*`` matches across dots, so messages are filtered again with AMQP topic rules.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import redis

from celeriac.drivers.redis import client as redis_conn
from celeriac.exceptions import DecodeError
from celeriac.protocol.envelope import from_envelope
from celeriac.protocol.message import Message
from celeriac.transports.base import FanoutSubscription, topic_matches
from celeriac.transports.redis.keys import Keyspace

#: How long to wait for the server to confirm a subscription (seconds).
CONFIRM_TIMEOUT = 5.0


class RedisSubscription(FanoutSubscription):
    """One PSUBSCRIBE connection listening to one exchange."""

    def __init__(self, client: redis.Redis, keys: Keyspace, exchange: str, pattern: str) -> None:
        self.exchange = exchange
        self.pattern = pattern or "#"
        self._keys = keys
        self._pubsub = redis_conn.pubsub(client)
        self._channels = keys.fanout_patterns_for(exchange, pattern)
        self._pubsub.psubscribe(*self._channels)
        self._pending: list[Message] = []
        self._confirm(len(self._channels))

    def _confirm(self, count: int) -> None:
        """Wait for the PSUBSCRIBE replies: after this, a publish from anyone reaches us."""
        deadline = time.monotonic() + CONFIRM_TIMEOUT
        while count and time.monotonic() < deadline:
            reply = self._pubsub.get_message(timeout=max(0.0, deadline - time.monotonic()))
            if reply is None:
                continue
            if reply["type"] == "psubscribe":
                count -= 1
            else:
                self._take(reply)

    def _take(self, reply: dict[str, Any]) -> None:
        if reply.get("type") != "pmessage":
            return
        channel = reply["channel"]
        channel = channel.decode() if isinstance(channel, bytes) else str(channel)
        exchange, routing_key = self._keys.split_channel(channel)
        if exchange != self.exchange or not topic_matches(self.pattern, routing_key):
            return
        try:
            message, _info = from_envelope(reply["data"])
        except DecodeError:
            return  # kombu logs and skips undecodable fanout payloads too
        self._pending.append(message)

    def get(self, timeout: float | None = None) -> list[Message]:
        deadline = time.monotonic() + (timeout or 0.0)
        while True:
            remaining = max(0.0, deadline - time.monotonic())
            # Block only for the first message; then drain whatever is already buffered.
            reply = self._pubsub.get_message(timeout=0.0 if self._pending else remaining)
            if reply is not None:
                self._take(reply)
                continue
            if self._pending or remaining <= 0:
                taken, self._pending = self._pending, []
                return taken

    def close(self) -> None:
        with contextlib.suppress(redis.RedisError, OSError):
            self._pubsub.close()


__all__ = ["RedisSubscription"]
