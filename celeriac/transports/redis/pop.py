"""The Redis transport's pop script (:data:`~celeriac.transports.redis.lua.POP_AND_RECORD`):
its arguments, its calls over the lean connection, and the unacked record a message taken by
``BRPOP`` still owes when that record was sent without waiting for its reply."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Container, Sequence
from typing import Any

import redis

from celeriac.drivers.redis.wire import Wire
from celeriac.exceptions import DecodeError
from celeriac.transports.redis.codec import decode, text
from celeriac.transports.redis.keys import Keyspace
from celeriac.transports.redis.lua import POP_AND_RECORD

SHA = hashlib.sha1(POP_AND_RECORD.encode()).hexdigest()

#: A message ``BRPOP`` took: (list key, raw envelope).
Carried = tuple[Any, Any]


def score() -> str:
    """A lease's ``unacked_index`` score: now, as the exact text sent (the holder compares
    it later to tell its own lease from one another consumer took after a restore)."""
    return repr(time.time())


class PopScript:
    """One per transport; ``next_due`` is when the earliest parked message is due."""

    def __init__(self, keys: Keyspace, wire: Wire) -> None:
        self.keys = keys
        self.wire = wire
        self.next_due: float | None = None
        #: Messages BRPOP took whose unacked record failed (see :meth:`record_later`), with
        #: the lease score they were to be recorded with.
        self.unrecorded: list[tuple[list[str], Carried, str]] = []

    def command(
        self,
        order: list[str],
        limit: int,
        carried: Carried | None,
        acks: Sequence[str],
        now: str,
    ) -> list[Any]:
        """``EVALSHA`` with the script's KEYS and ARGV."""
        keys = self.keys
        lists = keys.pop_order(order)
        delayed = [keys.delayed_key(q) for q in order]
        bases = [keys.queue_key(q) for q in order]
        carried_key, carried_raw = carried or (b"", b"")
        script_keys = [keys.unacked, keys.unacked_index, *lists, *delayed]
        return [
            "EVALSHA",
            SHA,
            len(script_keys),
            *script_keys,
            now,
            limit,
            len(lists),
            len(delayed),
            keys.sep,
            ",".join(map(str, keys.steps)),
            *bases,
            carried_raw,
            carried_key,
            1,
            *acks,
        ]

    def pop(
        self,
        client: redis.Redis,
        order: list[str],
        limit: int,
        carried: Carried | None = None,
        acks: Sequence[str] = (),
        now: str | None = None,
    ) -> list[tuple[str, str]]:
        """One call: promote due parked messages, ack ``acks``, pop and record up to
        ``limit`` with the lease score ``now`` (:func:`score`; the script is loaded again if
        the server lost it)."""
        command = self.command(order, limit, carried, acks, now or score())
        try:
            reply = self.wire.execute(client, [command])[0]
        except redis.exceptions.NoScriptError:
            client.script_load(POP_AND_RECORD)
            reply = self.wire.execute(client, [command])[0]
        return self._read(reply)

    def _read(self, reply: Any) -> list[tuple[str, str]]:
        out, next_due = reply
        self.next_due = float(next_due) if next_due else None
        return [(text(out[i]), text(out[i + 1])) for i in range(0, len(out), 2)]

    def record_later(
        self, client: redis.Redis, order: list[str], carried: Carried, now: str
    ) -> None:
        """Send the script that records ``carried`` as unacked; its reply is read before the
        next command on this connection. Should it fail (the server lost its scripts, the
        connection dropped), :meth:`record_again` records it on the next call unless it was
        settled meanwhile (its ack travels after the script, so settling it never leaves a
        stale record behind)."""

        def on_replies(replies: list[Any] | BaseException) -> None:
            if isinstance(replies, BaseException) or isinstance(
                replies[0], redis.exceptions.ResponseError
            ):
                self.unrecorded.append((order, carried, now))
            else:
                self._read(replies[0])

        self.wire.send(client, [self.command(order, 1, carried, (), now)], on_replies)

    def record_again(self, client: redis.Redis, held: Container[str]) -> None:
        """Record what :meth:`record_later` could not, for messages still ``held``."""
        while self.unrecorded:
            order, carried, now = self.unrecorded.pop(0)
            try:
                _, info = decode(carried[1])
            except DecodeError:
                continue
            if str(info.get("delivery_tag") or "") in held:
                self.pop(client, order, 1, carried=carried, now=now)


__all__ = ["SHA", "Carried", "PopScript", "score"]
