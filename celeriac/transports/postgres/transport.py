"""The PostgreSQL broker: ``postgresql://user:pass@host:5432/db`` (also ``postgres://``).

Messages are rows in a schema of their own (transport option ``schema``, default
``celeriac``), written and claimed through psycopg 3 directly. A consumer claims a batch with
``SELECT ... FOR UPDATE SKIP LOCKED`` and leases it (``visibility_timeout``, default 3600 s):
a lease that runs out is delivered again with ``redelivered=True``, :meth:`extend` renews it,
closing the transport gives the rows back. Priorities follow AMQP (larger first), FIFO within
one priority. An idle consumer sleeps in ``LISTEN``; every publish ``NOTIFY``s in the same
statement, so it wakes within milliseconds, and otherwise asks the database only when a
delayed row or a lease is due, or every ``polling_interval`` seconds (default 1) at most.

Transport options: ``schema``, ``visibility_timeout``, ``polling_interval``,
``fanout_retention`` (s, default 60), ``connect_timeout`` (s, default 10).

A lost connection (the server restarted, the network cut) is logged and retried: a producer
per ``task_publish_retry_policy``, a consumer per ``broker_connection_max_retries`` (waits of
0.5 s growing to 2 s, so a worker consumes again within seconds of the server's return; the
default 100 retries last about 3 minutes, ``None`` retries forever).
Leased rows survive the outage; one whose lease ran out meanwhile is delivered again.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg import sql as pgsql

from celeriac.drivers.reconnect import RetryPolicy, retry_call
from celeriac.drivers.urls import mask_url
from celeriac.exceptions import ImproperlyConfigured, OperationalError
from celeriac.protocol.entities import Queue
from celeriac.protocol.message import Message
from celeriac.transports.base import (
    Delivery,
    FanoutSubscription,
    Transport,
    fair_order,
    route,
    routed_rows,
    topic_matches,
)
from celeriac.transports.options import number, option
from celeriac.transports.postgres import sql
from celeriac.transports.sqlite import sql as rows
from celeriac.utils import forksafe

logger = logging.getLogger(__name__)
_T = TypeVar("_T")
#: A consumer's waits between reconnect attempts: short, the server is usually back soon.
RECONNECT = {"interval_start": 0.5, "interval_step": 0.5, "interval_max": 2.0}

_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,40}")
#: Connections inherited through fork are never closed by the child (that would end the
#: parent's session); they are parked here instead.
_ABANDONED: list[Any] = []


def conninfo_from_url(url: str) -> str:
    """``postgresql+psycopg://...`` -> ``postgresql://...`` (psycopg reads the URI itself)."""
    scheme, _, rest = url.partition("://")
    return f"postgresql://{rest}" if scheme.lower() != "postgres" else url


class ConnectionLost(OperationalError):
    """The server cannot be reached, or closed the connection: worth another try."""


def connect(url: str, timeout: float) -> psycopg.Connection[Any]:
    """An autocommit connection, or a clear error naming the extra / the masked URL."""
    try:
        return psycopg.connect(
            conninfo_from_url(url), autocommit=True, connect_timeout=max(1, int(timeout))
        )
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        raise ConnectionLost(
            f"Cannot connect to PostgreSQL broker {mask_url(url)}: {reason}"
        ) from exc


def _failure(url: str, exc: psycopg.Error, broken: bool) -> OperationalError:
    """Our error for ``exc``: :class:`ConnectionLost` when the connection is gone."""
    kind = (
        ConnectionLost if broken or isinstance(exc, psycopg.OperationalError) else OperationalError
    )
    return kind(f"PostgreSQL broker {mask_url(url)}: {exc}")


class PostgresTransport(Transport):
    """A broker in PostgreSQL tables, for teams that run Postgres and want no other server."""

    schemes = ("postgresql", "postgres", "postgresql+psycopg")
    supports_priority = True
    supports_delayed_delivery = True
    priority_higher_first = True

    def __init__(self, url: str, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(url, options)
        schema = str(self.options.get("schema", "celeriac"))
        if not _SCHEMA_NAME.fullmatch(schema):
            raise ImproperlyConfigured(
                f"Transport option schema={schema!r} must be a plain identifier of at most "
                "41 characters (letters, digits, underscore)"
            )
        self.schema = schema
        self.channel = f"celeriac_{schema}"
        #: Fanout (remote control) wake-ups have a channel of their own: a task's publish
        #: wakes the consumers only, not every worker's control thread as well.
        self.fanout_channel = f"celeriac_{schema}_fanout"
        self.visibility_timeout = number(self.options, "visibility_timeout", 3600.0)
        self.polling_interval = number(self.options, "polling_interval", 1.0)
        self.fanout_retention = number(self.options, "fanout_retention", 60.0)
        self.connect_timeout = number(self.options, "connect_timeout", 10.0)
        retries = option(self.options, "broker_connection_max_retries", default=100)
        self.connection_policy = RetryPolicy.from_mapping({**RECONNECT, "max_retries": retries})
        self.publish_policy = RetryPolicy.from_mapping(
            option(self.options, "task_publish_retry_policy", default=None)
        )
        if not option(self.options, "task_publish_retry", default=True):
            self.publish_policy = RetryPolicy(max_retries=0)
        self.retry_on_startup = bool(
            option(self.options, "broker_connection_retry_on_startup", default=True)
        )
        self._connected = False
        self._sql: dict[str, str] = {}
        self._conn: psycopg.Connection[Any] | None = None
        self._listener: _Listener | None = None
        self._reset_process_state()
        self._last_served: str | None = None
        self._next_reclaim = 0.0
        self._next_prune = 0.0

    def _reset_process_state(self) -> None:
        self._pid = forksafe.pid()
        self._lock = threading.Lock()
        self.consumer = uuid.uuid4().hex
        self._held: set[int] = set()

    def q(self, name: str) -> str:
        """The statement ``name`` of ``_postgres_sql`` for this schema (rendered once)."""
        text = self._sql.get(name)
        if text is None:
            text = self._sql[name] = sql.render(getattr(sql, name), f'"{self.schema}"')
        return text

    # -- connection ----------------------------------------------------------------------
    @contextmanager
    def _cursor(self) -> Iterator[psycopg.Cursor[Any]]:
        """A cursor of this process's connection, under the lock; errors become ours."""
        if self._pid != forksafe.pid():
            _ABANDONED.extend(c for c in (self._conn, self._listener) if c is not None)
            self._conn, self._listener = None, None
            self._reset_process_state()
        with self._lock:
            if self._conn is None or self._conn.closed:
                self._conn = self._open_connection()
                self._connected = True
            try:
                with self._conn.cursor() as cursor:
                    yield cursor
            except psycopg.Error as exc:
                broken = self._conn.broken or self._conn.closed
                if broken:
                    self._conn = None
                raise _failure(self.url, exc, bool(broken)) from exc

    def _retrying(self, action: Callable[[], _T], what: str, *, publish: bool = False) -> _T:
        """Run ``action``; when the connection is lost, log, wait and retry: a producer (a
        publish, or any call on a send-only connection) per its publish retry policy, a
        consumer per the reconnect policy."""
        if publish or self.send_only:
            policy = self.publish_policy
        elif self._connected or self.retry_on_startup:
            policy = self.connection_policy
        else:
            policy = RetryPolicy(max_retries=0)
        retried = False

        def on_retry(exc: BaseException, attempt: int, wait: float) -> None:
            nonlocal retried
            retried = True
            self._drop_listener()
            logger.error(
                "PostgreSQL broker %s unreachable while %s: %s; retry %d in %.1fs",
                mask_url(self.url), what, exc, attempt, wait,
            )  # fmt: skip

        result = retry_call(
            action, policy, (ConnectionLost,), on_retry=on_retry, stop=self._abandoned
        )
        if retried:
            logger.warning(
                "PostgreSQL broker %s reachable again: %s goes on", mask_url(self.url), what
            )
        return result

    def _drop_listener(self) -> None:
        """Forget a LISTEN connection that may be dead (the next wait opens a new one)."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()

    def _open_connection(self) -> psycopg.Connection[Any]:
        conn = connect(self.url, self.connect_timeout)
        try:
            exists = conn.execute(sql.EXISTS, (f'"{self.schema}".fanout',)).fetchone()
            if not (exists and exists[0]):
                with conn.transaction():
                    conn.execute(sql.SETUP_LOCK)
                    conn.execute(sql.render(sql.SCHEMA, f'"{self.schema}"'))
        except BaseException:
            conn.close()
            raise
        return conn

    def open(self) -> None:
        self._retrying(self._open_once, "connecting")

    def _open_once(self) -> None:
        with self._cursor():
            pass

    def close(self) -> None:
        """Give back this consumer's unacknowledged rows, then close the connections."""
        if self._pid != forksafe.pid():
            return
        held = sorted(self._held)
        if held and self._conn is not None and not self._conn.closed:
            try:
                self._unclaim_once(held)
            except OperationalError as exc:  # their leases run out instead
                logger.error("Could not give back %d message(s) on close: %s", len(held), exc)
        with self._lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- topology ------------------------------------------------------------------------
    def declare_queue(self, queue: Queue) -> None:
        def declare() -> None:
            with self._cursor() as cur:
                cur.execute(self.q("DECLARE_QUEUE"), (queue.name, time.time()))

        self._retrying(declare, f"declaring queue {queue.name!r}")
        if queue.exchange is not None and queue.exchange.name:
            self.declare_exchange(queue.exchange)
            self.bind(queue.name, queue.exchange.name, queue.key)

    def bind(self, queue: str, exchange: str, routing_key: str) -> None:
        def bind() -> None:
            with self._cursor() as cur:
                cur.execute(self.q("BIND"), (exchange, routing_key, queue))

        self._retrying(bind, f"binding queue {queue!r}")

    def _targets(self, cur: psycopg.Cursor[Any], exchange: str, routing_key: str) -> list[str]:
        if not exchange:
            return [routing_key]
        declared = self.exchanges.get(exchange)
        kind = declared.type if declared is not None else "direct"
        bindings = cur.execute(self.q("BINDINGS"), (exchange,)).fetchall()
        return route(kind, [(key, queue) for key, queue in bindings], routing_key)

    # -- producing -----------------------------------------------------------------------
    def publish(
        self,
        message: Message,
        *,
        exchange: str = "",
        routing_key: str,
        not_before: float | None = None,
    ) -> None:
        fields = rows.encode(message)
        now = time.time()
        visible_at = now if not_before is None else not_before

        def send() -> None:
            with self._cursor() as cur:
                targets = self._targets(cur, exchange, routing_key)
                if len(targets) == 1:
                    # The common case: insert and NOTIFY in one statement, one round trip.
                    cur.execute(
                        self.q("INSERT_NOTIFY"),
                        (targets[0], *fields, exchange, routing_key, visible_at, self.channel),
                    )
                elif targets:
                    copies = [(t, *fields, exchange, routing_key, visible_at) for t in targets]
                    self._insert(cur, copies)

        self._retrying(send, "publishing", publish=True)

    def publish_many(
        self, items: Sequence[tuple[Message, str, str]], *, not_before: float | None = None
    ) -> None:
        """Insert every routed copy in one transaction, then wake the consumers once."""
        if not items:
            return
        visible_at = time.time() if not_before is None else not_before

        def send() -> None:
            with self._cursor() as cur:
                params = routed_rows(
                    items, rows.encode, lambda e, k: self._targets(cur, e, k), visible_at
                )
                if params:
                    columns = [list(column) for column in zip(*params, strict=True)]
                    cur.execute(self.q("INSERT_MANY_NOTIFY"), (*columns, self.channel))

        self._retrying(send, "publishing", publish=True)

    def _insert(self, cur: psycopg.Cursor[Any], params: list[tuple[Any, ...]]) -> None:
        if not params:
            return
        with cur.connection.transaction():
            cur.executemany(self.q("INSERT"), params)
            cur.execute(sql.NOTIFY, (self.channel, sorted({p[0] for p in params})))

    # -- consuming -----------------------------------------------------------------------
    def get(
        self, queues: Sequence[str], *, max_messages: int = 1, timeout: float | None = None
    ) -> list[Delivery]:
        """Claim up to ``max_messages``; when idle, sleep in LISTEN until a publish or due."""
        if max_messages < 1 or not queues:
            return []
        return self._retrying(lambda: self._get(queues, max_messages, timeout), "consuming")

    def _get(
        self, queues: Sequence[str], max_messages: int, timeout: float | None
    ) -> list[Delivery]:
        listener = self._listening() if timeout else None
        if listener is not None:
            listener.drain()  # wake-ups for rows this claim will see anyway
        taken = self._claim(queues, max_messages)
        if taken or listener is None or timeout is None:
            return taken
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            due = self._seconds_until_due(queues)
            listener.wait(set(queues), min(remaining, due, max(self.polling_interval, 0.001)))
            listener.drain()
            taken = self._claim(queues, max_messages)
            if taken:
                return taken
        return []

    def _listening(self) -> _Listener:
        """The LISTEN connection, opened before the first claim so no NOTIFY is missed."""
        self._open_once()  # also resets state after fork
        if self._listener is None:
            self._listener = _Listener(self, self.channel)
        return self._listener

    def _seconds_until_due(self, queues: Sequence[str]) -> float:
        with self._cursor() as cur:
            row = cur.execute(self.q("NEXT_DUE"), (list(queues),)).fetchone()
        due = row[0] if row else None
        return float("inf") if due is None else max(0.0, due - time.time())

    def _claim(
        self, queues: Sequence[str], limit: int, acks: list[int] | None = None
    ) -> list[Delivery]:
        """Lease up to ``limit`` ready rows, queues in round-robin order; ``acks`` (row ids
        this consumer acknowledges) are deleted by the first claim's statement."""
        now = time.time()
        expires = now + self.visibility_timeout
        taken: list[Delivery] = []
        pending = acks
        with self._cursor() as cur:
            if now >= self._next_reclaim:
                self._next_reclaim = now + min(1.0, self.visibility_timeout / 4)
                cur.execute(self.q("RECLAIM_EXPIRED"), (now,))
            for queue in fair_order(queues, self._last_served):
                want = limit - len(taken)
                if want <= 0:
                    break
                if pending:
                    statement = self.q("ACK_AND_CLAIM")
                    params: tuple[Any, ...] = (pending, queue, now, want, self.consumer, expires)
                    pending = None
                else:
                    statement = self.q("CLAIM")
                    params = (queue, now, want, self.consumer, expires)
                batch = sorted(cur.execute(statement, params).fetchall(), key=rows.order_key)
                if batch:
                    self._last_served = queue
                    taken.extend(rows.delivery(row, self) for row in batch)
            self._held.difference_update(acks or ())
            self._held.update(int(d.delivery_tag) for d in taken)
        return taken

    def ack_and_get(
        self, queues: Sequence[str], acks: Sequence[Delivery], *, max_messages: int
    ) -> list[Delivery]:
        """Acknowledge ``acks`` and claim up to ``max_messages`` without blocking, in one
        statement (the :class:`~celeriac.transports.capabilities.AckAndGet` capability)."""
        if max_messages < 1 or not queues:
            self.ack(acks)
            return []
        return self._claim(queues, max_messages, [int(d.delivery_tag) for d in acks])

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        ids = [int(d.delivery_tag) for d in deliveries]
        if ids:

            def delete() -> None:
                with self._cursor() as cur:
                    cur.execute(self.q("DELETE_IDS"), (ids,))

            self._retrying(delete, "acknowledging")
            self._held.difference_update(ids)

    def reject(self, deliveries: Sequence[Delivery], *, requeue: bool = False) -> None:
        ids = sorted(int(d.delivery_tag) for d in deliveries)
        if not ids:
            return
        if not requeue:
            self.ack(deliveries)
            return

        def requeue_rows() -> None:
            with self._cursor() as cur:
                params = (ids, self.consumer, time.time(), self.channel)
                cur.execute(self.q("REQUEUE_AT_END"), params)

        self._retrying(requeue_rows, "requeueing")
        self._held.difference_update(ids)

    def restore(self, deliveries: Sequence[Delivery]) -> None:
        """Unclaim in place: the rows keep their ids, so they come back before newer ones."""
        self._unclaim([int(d.delivery_tag) for d in deliveries])

    def _unclaim(self, ids: list[int]) -> None:
        if ids:
            self._retrying(lambda: self._unclaim_once(ids), "giving back")

    def _unclaim_once(self, ids: list[int]) -> None:
        with self._cursor() as cur, cur.connection.transaction():
            queues = [r[0] for r in cur.execute(self.q("UNCLAIM"), (ids, self.consumer))]
            cur.execute(sql.NOTIFY, (self.channel, sorted(set(queues))))
        self._held.difference_update(ids)

    def defer(self, delivery: Delivery, until: float) -> None:
        tag = int(delivery.delivery_tag)

        def defer() -> None:
            with self._cursor() as cur:
                cur.execute(self.q("DEFER"), (until, tag, self.consumer))

        self._retrying(defer, "deferring")
        self._held.discard(tag)

    def extend(self, deliveries: Sequence[Delivery]) -> None:
        if deliveries:
            expires = time.time() + self.visibility_timeout
            ids = [int(d.delivery_tag) for d in deliveries]

            def extend() -> None:
                with self._cursor() as cur:
                    cur.execute(self.q("EXTEND"), (expires, ids, self.consumer))

            self._retrying(extend, "extending leases")

    @property
    def lease_period(self) -> float:
        """``ConfirmsLeases``: the lease is ``visibility_timeout``."""
        return float(self.visibility_timeout)

    def confirm(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        """Renew the leases still ours (the row's ``claimed_by``) and return those deliveries;
        a row whose lease ran out was reclaimed and may be another consumer's now."""
        if not deliveries:
            return []
        expires = time.time() + self.visibility_timeout
        ids = [int(d.delivery_tag) for d in deliveries]

        def confirm() -> set[int]:
            with self._cursor() as cur:
                rows = cur.execute(self.q("CONFIRM"), (expires, ids, self.consumer)).fetchall()
                return {int(row[0]) for row in rows}

        ours = self._retrying(confirm, "confirming leases")
        self._held.difference_update(set(ids) - ours)
        return [d for d in deliveries if int(d.delivery_tag) in ours]

    # -- queue admin ---------------------------------------------------------------------
    def purge(self, queue: str) -> int:
        def purge() -> int:
            with self._cursor() as cur:
                return int(cur.execute(self.q("PURGE"), (queue,)).rowcount)

        return self._retrying(purge, f"purging {queue!r}")

    def size(self, queue: str) -> int:
        """Waiting rows of ``queue``, delayed ones included (leased ones are not)."""

        def size() -> int:
            with self._cursor() as cur:
                row = cur.execute(self.q("SIZE"), (queue,)).fetchone()
            return int(row[0]) if row else 0

        return self._retrying(size, f"sizing {queue!r}")

    # -- fanout --------------------------------------------------------------------------
    def fanout_publish(self, exchange: str, message: Message, routing_key: str = "") -> None:
        """Append to the fanout log and wake the subscribers of ``exchange``."""
        fields = rows.encode(message)
        now = time.time()
        with self._cursor() as cur, cur.connection.transaction():
            cur.execute(sql.FANOUT_LOCK, (f"celeriac-fanout-{self.schema}",))
            cur.execute(self.q("FANOUT_INSERT"), (exchange, routing_key, *fields[1:], now))
            if now >= self._next_prune:
                self._next_prune = now + min(5.0, self.fanout_retention)
                cur.execute(self.q("FANOUT_PRUNE"), (now - self.fanout_retention,))
            cur.execute(sql.NOTIFY, (self.fanout_channel, [sql.FANOUT_PREFIX + exchange]))

    def fanout_subscribe(self, exchange: str, pattern: str = "#") -> FanoutSubscription:
        with self._cursor() as cur:
            row = cur.execute(self.q("FANOUT_LAST_ID")).fetchone()
        return _PostgresSubscription(self, exchange, pattern or "#", int(row[0]) if row else 0)

    def _fanout_since(self, exchange: str, last: int) -> list[tuple[Any, ...]]:
        with self._cursor() as cur:
            return cur.execute(self.q("FANOUT_SINCE"), (last, exchange)).fetchall()


class _Listener:
    """A connection of its own that sits in ``LISTEN`` on the schema's channel."""

    def __init__(self, transport: PostgresTransport, channel: str) -> None:
        self.url = transport.url
        self.conn = connect(transport.url, transport.connect_timeout)
        self.conn.execute(pgsql.SQL("LISTEN {}").format(pgsql.Identifier(channel)))
        self._lock = threading.Lock()

    def wait(self, wanted: set[str], timeout: float) -> bool:
        """Wait up to ``timeout`` s for a NOTIFY naming one of ``wanted`` (or everyone)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while (remaining := deadline - time.monotonic()) > 0:
                try:
                    for note in self.conn.notifies(timeout=remaining, stop_after=1):
                        if note.payload in wanted or note.payload == sql.EVERYONE:
                            return True
                except psycopg.Error as exc:
                    raise _failure(self.url, exc, self.conn.broken or self.conn.closed) from exc
        return False

    def drain(self) -> None:
        """Forget the NOTIFYs received so far (the claim that follows covers them)."""
        with self._lock:
            try:
                for _note in self.conn.notifies(timeout=0):
                    pass
            except psycopg.Error as exc:
                raise _failure(self.url, exc, self.conn.broken or self.conn.closed) from exc

    def close(self) -> None:
        self.conn.close()


class _PostgresSubscription(FanoutSubscription):
    """Reads the fanout log of one exchange from the row after the last one it saw."""

    def __init__(
        self, transport: PostgresTransport, exchange: str, pattern: str, last: int
    ) -> None:
        self._transport = transport
        self.exchange = exchange
        self.pattern = pattern
        self._last = last
        self._listener: _Listener | None = None
        self._closed = False

    def get(self, timeout: float | None = None) -> list[Message]:
        if timeout and self._listener is None:
            self._listener = _Listener(self._transport, self._transport.fanout_channel)
        deadline = time.monotonic() + (timeout or 0.0)
        wanted = {sql.FANOUT_PREFIX + self.exchange}
        while not self._closed:
            if self._listener is not None:
                self._listener.drain()
            messages = self._poll()
            remaining = deadline - time.monotonic()
            if messages or remaining <= 0 or self._listener is None:
                return messages
            interval = max(self._transport.polling_interval, 0.001)
            self._listener.wait(wanted, min(remaining, interval))
        return []

    def _poll(self) -> list[Message]:
        found = self._transport._fanout_since(self.exchange, self._last)
        if found:
            self._last = found[-1][0]
        return [rows.fanout_message(r) for r in found if topic_matches(self.pattern, r[1])]

    def close(self) -> None:
        self._closed = True
        if self._listener is not None:
            self._listener.close()
            self._listener = None


__all__ = ["PostgresTransport", "conninfo_from_url"]
