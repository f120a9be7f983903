"""The Redis broker (``redis://``, ``rediss://``, ``redis+socket://``, ``sentinel://``).

Byte-compatible with kombu 5.7's Redis transport, so celeriac and Celery clients and workers
share one Redis: the same envelope in the same lists (``Q`` and ``Q\\x06\\x16<step>``, a lower
priority number served first), the same ``_kombu.binding.*`` sets, the same ``unacked`` hash
and ``unacked_index`` sorted set (any consumer restores expired leases) and the same fanout
channels (``/<db>.<exchange>/<routing key>``).

What celeriac adds without changing what others see: a batch of messages is popped and recorded
as unacked in one server-side script (no window in which a crash loses a popped message), an
idle consumer waits on key tracking instead of ``BRPOP`` (a broken connection cannot take a
message with it; :mod:`celeriac.drivers.redis.tracking`), held
messages have their lease renewed (``extend``) so only a dead consumer's messages come back,
and far-future ETA messages can be parked in a per-queue sorted set (``defer``).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import redis

from celeriac.drivers.reconnect import RetryPolicy, retry_call, tcp_listening
from celeriac.drivers.redis import client as redis_conn
from celeriac.drivers.redis.plain import PlainWire
from celeriac.drivers.redis.tracking import KeyWatch
from celeriac.drivers.redis.wire import Wire
from celeriac.drivers.tls import REDIS_PY_NAMES, certificate_hint
from celeriac.exceptions import DecodeError, ImproperlyConfigured, OperationalError
from celeriac.protocol.entities import Queue
from celeriac.protocol.envelope import dump_envelope
from celeriac.protocol.message import Message
from celeriac.transports.base import Delivery, FanoutSubscription, Transport, fair_order, route
from celeriac.transports.options import number, option
from celeriac.transports.redis import unacked
from celeriac.transports.redis.codec import decode, retry_policies, text
from celeriac.transports.redis.fanout import RedisSubscription
from celeriac.transports.redis.keys import Keyspace
from celeriac.transports.redis.lua import CONFIRM_LEASES
from celeriac.transports.redis.pop import Carried, PopScript, score
from celeriac.utils import forksafe
from celeriac.utils.ids import uuid4

logger = logging.getLogger("celeriac.transports.redis")
_T = TypeVar("_T")

#: Celery's reconnect intervals for a consumer (kombu ``ensure_connection`` defaults).
RECONNECT = {"interval_start": 2.0, "interval_step": 2.0, "interval_max": 30.0}
#: The shortest BRPOP wait sent to the server (0 would mean "forever").
_MIN_BLOCK = 0.01
_STRATEGIES = ("round_robin", "sorted", "priority")


class RedisTransport(Transport):
    """A kombu-compatible Redis broker connection (one per process)."""

    schemes = ("redis", "rediss", "redis+socket", "socket", "sentinel")
    supports_priority = True
    #: ETA messages are LPUSHed as Celery does (Celery workers can run them); set the
    #: transport option ``broker_side_eta`` to park them in the broker instead.
    supports_delayed_delivery = False
    priority_higher_first = False
    direct_consume = True

    def __init__(self, url: str, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(url, options)
        opts = self.options

        self.params = redis_conn.parse_url(
            url,
            opts,
            use_ssl=option(opts, "broker_use_ssl", "ssl"),
            connect_timeout=float(option(opts, "broker_connection_timeout", default=4.0) or 4.0),
        )
        self.keys = Keyspace(opts, self.params.db)
        self.visibility_timeout = number(opts, "visibility_timeout", 3600.0)
        self.restore_interval = number(opts, "unacked_restore_interval", 10.0)
        limit = opts.get("unacked_restore_limit")
        self.restore_limit = int(limit) if limit else None
        self.block_slice = number(opts, "brpop_timeout", number(opts, "polling_interval", 1.0))
        self.broker_side_eta = bool(opts.get("broker_side_eta", False))
        self.strategy = str(opts.get("queue_order_strategy") or "round_robin")
        if self.strategy not in _STRATEGIES:
            raise ImproperlyConfigured(f"queue_order_strategy must be one of {_STRATEGIES}")
        self.retry_on_startup = bool(
            option(opts, "broker_connection_retry_on_startup", default=True)
        )
        self.connection_policy, self.publish_policy = retry_policies(opts, RECONNECT)
        self.where = redis_conn.describe(self.params)
        # A TCP server to probe between reconnect attempts (not a socket file or Sentinel).
        plain = self.params.path is None and not self.params.sentinels
        self._probe = (self.params.host, self.params.port) if plain else None
        self._pid = 0
        self._client: redis.Redis | None = None
        self._wire = Wire() if option(opts, "redis_lean_resp", default=True) else PlainWire()
        self._pops = PopScript(self.keys, self._wire)
        # Off: wait with BRPOP as kombu does (a message popped as the connection breaks is lost).
        self._watch = KeyWatch() if option(opts, "key_tracking", default=True) else None
        self._lock = threading.Lock()
        self._held: dict[str, tuple[str, str]] = {}  # tag -> (queue, raw envelope)
        self._scores: dict[str, str] = {}  # tag -> the lease score this consumer last wrote
        self._last_served: str | None = None
        self._next_restore = 0.0

    # -- connection ------------------------------------------------------------------------
    @property
    def client(self) -> redis.Redis:
        """This process's client (a new pool after ``fork``: connections are never shared)."""
        if self._client is None or self._pid != forksafe.pid():
            self._client = redis_conn.client(self.params)
            if self._pid and self._pid != forksafe.pid():
                self._held = {}  # the parent's deliveries are the parent's to settle
                self._scores = {}
            self._pid = forksafe.pid()
        return self._client

    def _call(self, action: Callable[[], _T], policy: RetryPolicy, what: str) -> _T:
        """Run ``action``; on a lost connection log, wait and retry per ``policy``."""
        try:
            return action()  # the common case, without the retry machinery
        except redis_conn.CONNECTION_ERRORS as exc:
            return self._call_again(action, policy, what, exc)

    def _call_again(
        self, action: Callable[[], _T], policy: RetryPolicy, what: str, failed: BaseException
    ) -> _T:
        retried = False

        def on_retry(exc: BaseException, attempt: int, wait: float) -> None:
            nonlocal retried
            retried = True
            logger.error(
                "Redis broker at %s unreachable while %s: %s; retry %d in %.1fs",
                self.where,
                what,
                exc,
                attempt,
                wait,
            )

        try:
            result = retry_call(
                action,
                policy,
                redis_conn.CONNECTION_ERRORS,
                on_retry=on_retry,
                stop=self._abandoned,
                ready=self._listening if self._probe is not None else None,
                failed=failed,
            )
        except redis_conn.CONNECTION_ERRORS as exc:
            hint = certificate_hint(exc, "broker_use_ssl", REDIS_PY_NAMES)
            raise OperationalError(
                f"Cannot reach the Redis broker at {self.where} while {what}: {exc}{hint}"
            ) from exc
        if retried:
            logger.warning("Redis broker at %s reachable again: %s goes on", self.where, what)
        return result

    def _listening(self) -> bool:
        """Does the server's port accept a TCP connection again? (Between reconnect attempts.)"""
        assert self._probe is not None
        return tcp_listening(*self._probe)

    def open(self) -> None:
        policy = self.connection_policy if self.retry_on_startup else RetryPolicy(max_retries=0)
        self._call(lambda: self.client.ping(), policy, "connecting")

    def close(self) -> None:
        """Give back what this consumer holds; pooled connections stay for the process."""
        if self._pid != forksafe.pid():
            return
        with self._lock:
            held = dict(self._held)
            self._held.clear()
            self._scores.clear()
        tags = list(held)
        queues = {tag: queue for tag, (queue, _raw) in held.items()}
        try:
            if tags:
                self._restore_tags(tags[::-1], to_front=True, queues=queues)
        except OperationalError as exc:
            logger.error("Could not give back %d message(s) on close: %s", len(tags), exc)
        finally:
            self._wire.close()
            if self._watch is not None:
                self._watch.close()

    # -- topology --------------------------------------------------------------------------
    def declare_queue(self, queue: Queue) -> None:
        if queue.exchange is not None and queue.exchange.name:
            self.declare_exchange(queue.exchange)
            self._bind(queue.name, queue.exchange.name, queue.key, queue.queue_arguments)

    def bind(self, queue: str, exchange: str, routing_key: str) -> None:
        self._bind(queue, exchange, routing_key, {})

    def _bind(self, queue: str, exchange: str, key: str, arguments: Mapping[str, Any]) -> None:
        """kombu 5.7: the binding set, plus the permanent set unless the queue expires."""
        declared = self.exchanges.get(exchange)
        member = self.keys.binding_member(declared.type if declared else "direct", key, queue)
        expires = arguments.get("x-expires")

        def write() -> None:
            pipe = self.client.pipeline(transaction=True)
            pipe.sadd(self.keys.binding_key(exchange), member)
            if expires is None:
                pipe.sadd(self.keys.permanent_binding_key(exchange), member)
            else:
                deadline = int(time.time() * 1000) + max(2 * int(expires), 3_600_000)
                deadlines = self.keys.prefix + "_kombu.binding_deadlines"
                pipe.zadd(deadlines, {exchange: deadline}, gt=True)
            pipe.execute()

        # A producer's binding is part of its publish (kombu's declare=): it gives up as the
        # publish does, not after the worker's reconnect policy.
        policy = self.publish_policy if self.send_only else self.connection_policy
        self._call(write, policy, f"binding queue {queue!r}")

    def _lookup(self, exchange: str, routing_key: str) -> list[str]:
        """The queues a publish reaches (kombu: exchange ``""`` means the queue itself)."""
        if not exchange:
            return [routing_key]
        declared = self.exchanges.get(exchange)
        members = self.client.smembers(self.keys.binding_key(exchange))
        pairs = sorted(self.keys.parse_member(m) for m in members)
        return route(declared.type if declared else "direct", pairs, routing_key)

    # -- producing -------------------------------------------------------------------------
    def publish_many(
        self, items: Sequence[tuple[Message, str, str]], *, not_before: float | None = None
    ) -> None:
        """LPUSH every routed copy in one pipeline (ETA copies to the delayed set if enabled)."""
        if not items:
            return
        due = not_before if not_before is not None and not_before > time.time() else None
        park = self.broker_side_eta and due is not None
        encoded = [
            (
                dump_envelope(message, exchange=ex, routing_key=rk, delivery_tag=uuid4()),
                message.properties.get("priority"),
                ex,
                rk,
            )
            for message, ex, rk in items
        ]

        if len(encoded) == 1 and not park and not encoded[0][2]:
            # The common case (one task to the default exchange): one plain LPUSH.
            raw, priority, _ex, queue = encoded[0]
            key = self.keys.queue_key(queue, self.keys.step_of(priority))
            command = [("LPUSH", key, raw)]
            self._call(
                lambda: self._wire.execute(self.client, command), self.publish_policy, "publishing"
            )
            return

        def send() -> None:
            routes: dict[tuple[str, str], list[str]] = {}
            commands: list[tuple[Any, ...]] = []
            keys = self.keys
            for raw, priority, ex, rk in encoded:
                targets = routes.get((ex, rk))
                if targets is None:
                    targets = routes[(ex, rk)] = self._lookup(ex, rk)
                for queue in targets:
                    if park and due is not None:
                        commands.append(("ZADD", keys.delayed_key(queue), due, raw))
                    else:
                        commands.append(
                            ("LPUSH", keys.queue_key(queue, keys.step_of(priority)), raw)
                        )
            if commands:  # one write, every reply read (the lean path's pipeline)
                self._wire.execute(self.client, commands)

        self._call(send, self.publish_policy, "publishing")

    def publish_envelopes(self, items: Sequence[tuple[str, str, int]]) -> None:
        """``PublishesEnvelopes``: LPUSH each envelope text to its queue's list for its
        priority, one write for all, every reply read."""
        keys = self.keys
        commands = [("LPUSH", keys.queue_key(q, keys.step_of(p)), raw) for raw, q, p in items]
        self._call(
            lambda: self._wire.execute(self.client, commands), self.publish_policy, "publishing"
        )

    # -- consuming -------------------------------------------------------------------------
    def _order(self, queues: Sequence[str]) -> list[str]:
        if self.strategy == "round_robin":
            return fair_order(queues, self._last_served)
        return list(queues)

    def get(
        self, queues: Sequence[str], *, max_messages: int = 1, timeout: float | None = None
    ) -> list[Delivery]:
        if max_messages < 1 or not queues:
            return []
        return self._call(
            lambda: self._get(list(queues), max_messages, timeout),
            self.connection_policy,
            "consuming",
        )

    def ack_and_get(
        self, queues: Sequence[str], acks: Sequence[Delivery], *, max_messages: int
    ) -> list[Delivery]:
        """Ack ``acks`` and take up to ``max_messages`` waiting messages without blocking,
        in one round trip (the pop script acks first: ``ZREM`` + ``HDEL`` as :meth:`ack`)."""
        tags = list(self._release(acks))
        if max_messages < 1 or not queues:
            self._ack_tags(tags)
            return []

        def fetch() -> list[Delivery]:
            self._record_again()
            self._maybe_restore_visible()
            now = score()
            order = self._order(list(queues))
            return self._deliveries(self._pop(order, max_messages, acks=tags, now=now), now)

        return self._call(fetch, self.connection_policy, "consuming")

    def _get(self, queues: list[str], limit: int, timeout: float | None) -> list[Delivery]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._record_again()
            self._maybe_restore_visible()
            order = self._order(queues)
            # Watching starts before the look: a message pushed after it wakes the wait.
            watching = deadline is not None and self._watching(queues)
            now = score()
            found = self._pop(order, limit, now=now)
            if found or deadline is None:
                return self._deliveries(found, now)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            block = min(remaining, self.block_slice)
            next_due = self._pops.next_due
            if next_due is not None:
                block = min(block, max(next_due - time.time(), 0.0))
            if block < _MIN_BLOCK:
                if remaining <= _MIN_BLOCK:
                    return []
                continue  # a parked message is due: the next pop moves it to its list
            if watching:
                assert self._watch is not None
                self._watch.wait(block)
                continue  # changed, or the slice passed: the script looks again
            hit = self._wire.execute(self.client, [("BRPOP", *self.keys.pop_order(order), block)])
            if hit[0]:
                key, raw = hit[0]
                # Recorded as unacked by the script, whose reply is read on the next call:
                # the task starts without waiting for that round trip.
                now = score()
                self._pops.record_later(self.client, order, (key, raw), now)
                return self._deliveries([(text(key), text(raw))], now)

    def _watching(self, queues: list[str]) -> bool:
        """Arm the key watch on ``queues``' lists; False when waiting falls back to BRPOP."""
        watch = self._watch
        if watch is None:
            return False
        if watch.arm(self.client, self.keys.pop_order(queues)):
            return True
        if watch.unsupported is not None:
            logger.warning(
                "Redis at %s refused key tracking (%s; Redis 6 or later has it): waiting "
                "with BRPOP, which loses a message whose reply a broken connection drops",
                self.where,
                watch.unsupported,
            )
            self._watch = None
        return False

    def _pop(
        self,
        order: list[str],
        limit: int,
        carried: Carried | None = None,
        acks: Sequence[str] = (),
        now: str | None = None,
    ) -> list[tuple[str, str]]:
        return self._pops.pop(self.client, order, limit, carried, acks, now)

    def _record_again(self) -> None:
        self._pops.record_again(self.client, self._held)

    def _settle_sent(self) -> None:
        """Before a command on another connection touches the unacked records: the replies
        owed on the lean connection are read (so the server has applied those commands)."""
        self._wire.flush()
        self._record_again()

    def _deliveries(self, found: list[tuple[str, str]], now: str) -> list[Delivery]:
        """Deliveries of what the pop script took and recorded with the lease score ``now``."""
        deliveries: list[Delivery] = []
        for key, raw in found:
            queue = self.keys.queue_of(key)
            try:
                message, info = decode(raw)
            except DecodeError as exc:
                logger.error("Discarding a malformed message from %r: %s: %.200r", queue, exc, raw)
                continue
            tag = str(info.get("delivery_tag") or uuid.uuid4())
            with self._lock:
                self._held[tag] = (queue, raw)
                self._scores[tag] = now
            self._last_served = queue
            deliveries.append(
                Delivery(
                    message=message,
                    queue=queue,
                    exchange=str(info.get("exchange") or ""),
                    routing_key=str(info.get("routing_key") or ""),
                    delivery_tag=tag,
                    redelivered=bool(info.get("redelivered")),
                    transport=self,
                )
            )
        return deliveries

    def _release(self, deliveries: Sequence[Delivery]) -> dict[str, tuple[str, str]]:
        with self._lock:
            for d in deliveries:
                self._scores.pop(d.delivery_tag, None)
            return {
                d.delivery_tag: self._held.pop(d.delivery_tag, (d.queue, "")) for d in deliveries
            }

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Forget the deliveries: ``ZREM unacked_index`` + ``HDEL unacked``, one round trip."""
        self._ack_tags(list(self._release(deliveries)))

    def _ack_tags(self, tags: list[str]) -> None:
        if not tags:
            return

        commands = [("ZREM", self.keys.unacked_index, *tags), ("HDEL", self.keys.unacked, *tags)]
        self._call(
            lambda: self._wire.execute(self.client, commands),
            self.connection_policy,
            "acknowledging",
        )

    def reject(self, deliveries: Sequence[Delivery], *, requeue: bool = False) -> None:
        if not requeue:
            self.ack(deliveries)
            return
        held = self._release(deliveries)
        queues = {tag: queue for tag, (queue, _raw) in held.items()}
        self._restore_tags(list(held), to_front=False, queues=queues)

    def restore(self, deliveries: Sequence[Delivery]) -> None:
        """Back to the consuming end, oldest last pushed so the original order returns."""
        held = self._release(deliveries)
        queues = {tag: queue for tag, (queue, _raw) in held.items()}
        self._restore_tags(list(held)[::-1], to_front=True, queues=queues)

    def _restore_tags(self, tags: list[str], *, to_front: bool, queues: dict[str, str]) -> None:
        self._settle_sent()
        self._call(
            lambda: unacked.restore(
                self.client, self.keys, tags, self._lookup, to_front=to_front, queues=queues
            ),
            self.connection_policy,
            "restoring messages",
        )

    def defer(self, delivery: Delivery, until: float) -> None:
        """Park the message in its queue's delayed set and settle it, in one transaction."""
        [(tag, (queue, raw))] = self._release([delivery]).items()
        if not raw:
            raw = dump_envelope(
                delivery.message,
                exchange=delivery.exchange,
                routing_key=delivery.routing_key,
                delivery_tag=tag,
            )

        def send() -> None:
            self._settle_sent()
            pipe = self.client.pipeline(transaction=True)
            pipe.zadd(self.keys.delayed_key(queue), {raw: until})
            pipe.zrem(self.keys.unacked_index, tag)
            pipe.hdel(self.keys.unacked, tag)
            pipe.execute()

        self._call(send, self.connection_policy, "parking an ETA message")

    def extend(self, deliveries: Sequence[Delivery]) -> None:
        """Renew leases: a fresh ``unacked_index`` score (``XX``: never re-adds a settled one)."""
        with self._lock:
            tags = [d.delivery_tag for d in deliveries if d.delivery_tag in self._held]
        if not tags:
            return
        now = score()
        self._settle_sent()
        self._call(
            lambda: self.client.zadd(self.keys.unacked_index, dict.fromkeys(tags, now), xx=True),
            self.connection_policy,
            "renewing leases",
        )
        self._remember_scores(tags, now)

    @property
    def lease_period(self) -> float:
        """``ConfirmsLeases``: the lease is ``visibility_timeout``."""
        return float(self.visibility_timeout)

    def confirm(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        """Renew and return the deliveries whose lease is still this consumer's: its tag is
        in ``unacked_index`` with the score this consumer wrote last (``ConfirmsLeases``).
        Another score means the lease ran out and the message went to another consumer."""
        with self._lock:
            expected = {
                d.delivery_tag: self._scores[d.delivery_tag]
                for d in deliveries
                if d.delivery_tag in self._scores
            }
        if not expected:
            return []
        now = score()
        pairs = [value for item in expected.items() for value in item]

        def run() -> Any:
            self._settle_sent()
            return self.client.eval(CONFIRM_LEASES, 1, self.keys.unacked_index, now, *pairs)

        kept = {text(tag) for tag in self._call(run, self.connection_policy, "renewing leases")}
        self._remember_scores(kept, now)
        return [d for d in deliveries if d.delivery_tag in kept]

    def _remember_scores(self, tags: Iterable[str], now: str) -> None:
        with self._lock:
            for tag in tags:
                if tag in self._scores:
                    self._scores[tag] = now

    def _maybe_restore_visible(self) -> None:
        """Every ``unacked_restore_interval``: restore any consumer's expired leases."""
        now = time.monotonic()
        if now < self._next_restore:
            return
        self._next_restore = now + self.restore_interval
        unacked.restore_visible(
            self.client,
            self.keys,
            self.visibility_timeout,
            self._lookup,
            limit=self.restore_limit,
        )

    # -- queue admin -----------------------------------------------------------------------
    def purge(self, queue: str) -> int:
        keys = [*self.keys.all_queue_keys(queue), self.keys.delayed_key(queue)]

        def send() -> int:
            pipe = self.client.pipeline(transaction=True)
            for key in keys[:-1]:
                pipe.llen(key)
            pipe.zcard(keys[-1])
            pipe.delete(*keys)
            return sum(int(n) for n in pipe.execute()[:-1])

        return self._call(send, self.connection_policy, f"purging {queue!r}")

    def size(self, queue: str) -> int:
        """Waiting messages of ``queue``, every priority list and parked ones included."""

        def send() -> int:
            pipe = self.client.pipeline(transaction=False)
            for key in self.keys.all_queue_keys(queue):
                pipe.llen(key)
            pipe.zcard(self.keys.delayed_key(queue))
            return sum(int(n) for n in pipe.execute())

        return self._call(send, self.connection_policy, f"sizing {queue!r}")

    # -- fanout ----------------------------------------------------------------------------
    def fanout_publish(self, exchange: str, message: Message, routing_key: str = "") -> None:
        raw = dump_envelope(
            message, exchange=exchange, routing_key=routing_key, delivery_tag=str(uuid.uuid4())
        )
        channel = self.keys.fanout_channel(exchange, routing_key)
        self._call(lambda: self.client.publish(channel, raw), self.publish_policy, "publishing")

    def fanout_subscribe(self, exchange: str, pattern: str = "#") -> FanoutSubscription:
        return self._call(
            lambda: RedisSubscription(self.client, self.keys, exchange, pattern),
            self.connection_policy,
            f"subscribing to {exchange!r}",
        )


__all__ = ["RedisTransport"]
