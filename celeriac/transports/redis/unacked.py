"""kombu's acknowledgement emulation: giving back messages recorded in ``unacked``.

Restores use kombu's transaction (``WATCH unacked``, ``HGET``, ``MULTI``, ``ZREM``, ``HDEL``,
push, ``EXEC``), so a celeriac and a Celery consumer restoring the same message race safely:
exactly one of them pushes it back. The pushed envelope gets ``redelivered: true`` in its
headers and its ``delivery_info`` and keeps its delivery tag.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import redis

from celeriac.transports.redis.keys import Keyspace
from celeriac.transports.redis.lua import RELEASE_MUTEX

logger = logging.getLogger("celeriac.transports.redis")

#: (exchange, routing_key) -> the queues a restored message goes back to.
Lookup = Callable[[str, str], list[str]]
#: kombu's ``unacked_mutex_expire``: a sweeper that died frees the lock after 5 minutes.
MUTEX_EXPIRE_MS = 300_000


def redelivered(stored: bytes | str) -> tuple[str, str, str, Any] | None:
    """A stored ``[envelope, exchange, routing_key]`` -> (redelivered envelope JSON,
    exchange, routing key, priority); None when the value is not kombu's shape.

    Plain ``json`` keeps the key order and re-encodes exactly as kombu's ``dumps`` does.
    """
    try:
        envelope, exchange, routing_key = json.loads(stored)
        envelope.setdefault("headers", {})["redelivered"] = True
        properties = envelope.setdefault("properties", {})
        properties.setdefault("delivery_info", {})["redelivered"] = True
    except (ValueError, TypeError, AttributeError):
        return None
    return json.dumps(envelope), exchange or "", routing_key or "", properties.get("priority")


def restore(
    client: redis.Redis,
    keys: Keyspace,
    tags: Sequence[str],
    lookup: Lookup,
    *,
    to_front: bool,
    queues: dict[str, str] | None = None,
) -> int:
    """Give the messages of ``tags`` back (RPUSH ``to_front``, else LPUSH); return how many.

    ``queues`` maps a tag to the queue it was taken from (this consumer knows it); other
    tags are routed again from their stored exchange and routing key, as kombu does.
    """
    if not tags:
        return 0
    pushed = 0

    def transaction(pipe: Any) -> None:
        nonlocal pushed
        pushed = 0
        stored = pipe.hmget(keys.unacked, list(tags))
        pipe.multi()
        pipe.zrem(keys.unacked_index, *tags)
        pipe.hdel(keys.unacked, *tags)
        for tag, value in zip(tags, stored, strict=True):
            parsed = redelivered(value) if value else None
            if parsed is None:
                if value:
                    logger.critical("Could not restore message %s: %r", tag, value[:200])
                continue
            envelope, exchange, routing_key, priority = parsed
            known = (queues or {}).get(tag)
            targets = [known] if known else lookup(exchange, routing_key)
            for queue in targets:
                key = keys.queue_key(queue, keys.step_of(priority))
                (pipe.rpush if to_front else pipe.lpush)(key, envelope)
                pushed += 1

    client.transaction(transaction, keys.unacked)
    return pushed


def restore_visible(
    client: redis.Redis,
    keys: Keyspace,
    visibility_timeout: float,
    lookup: Lookup,
    *,
    limit: int | None = None,
) -> int:
    """Restore every message whose lease ran out, under kombu's ``unacked_mutex``."""
    token = uuid.uuid4().hex
    if not client.set(keys.unacked_mutex, token, nx=True, px=MUTEX_EXPIRE_MS):
        return 0  # another consumer is sweeping right now
    try:
        ceiling = time.time() - visibility_timeout
        found = client.zrange(
            keys.unacked_index,
            ceiling,
            0,
            byscore=True,
            desc=True,
            withscores=True,
            offset=0 if limit else None,
            num=limit or None,
        )
        tags = [
            entry[0].decode() if isinstance(entry[0], bytes) else str(entry[0]) for entry in found
        ]
        restored = 0
        for tag in tags:  # one transaction each, as kombu: a failure costs one message
            restored += restore(client, keys, [tag], lookup, to_front=True)
        if restored:
            logger.warning(
                "Restored %d message(s) whose visibility timeout (%ss) ran out",
                restored,
                visibility_timeout,
            )
        return restored
    finally:
        client.eval(RELEASE_MUTEX, 1, keys.unacked_mutex, token)


__all__ = ["Lookup", "redelivered", "restore", "restore_visible"]
