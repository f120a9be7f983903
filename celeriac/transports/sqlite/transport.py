"""The embedded broker on one SQLite file: ``sqlite:///relative.db`` or ``sqlite:////abs.db``.

This is the default broker when no ``broker_url`` is set. Many processes may share one file:
each claims a batch of rows in one ``BEGIN IMMEDIATE`` transaction, marking them with its
consumer token and a lease (``visibility_timeout``, default 3600 s). A row whose lease ran out
is delivered again, to anyone, with ``redelivered=True``; :meth:`SQLiteTransport.extend` renews
leases. Priorities follow AMQP (larger first), FIFO (by row id) within one priority.

Transport options: ``visibility_timeout`` (s), ``busy_timeout`` (s, default 30),
``polling_interval`` (s, the cap of the idle polling backoff, default 0.05) and
``fanout_retention`` (s, how long fanout rows are kept for slow subscribers, default 60).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

from celeriac.drivers.sqlite import SpaceWait, cannot_write_text, retry_locked, unwritable
from celeriac.drivers.wakeup import wakeup_for
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
from celeriac.transports.options import number
from celeriac.transports.sqlite import sql
from celeriac.utils import forksafe

_T = TypeVar("_T")

logger = logging.getLogger("celeriac.transports.sqlite")

DEFAULT_PATH = "celeriac-broker.sqlite"
#: SQLite allows at most 32766 bound parameters; ids are sent in chunks well below that.
_CHUNK = 500
#: Connections inherited through fork are never closed by the child (that could checkpoint or
#: unlock the parent's file); they are parked here instead.
_ABANDONED: list[sqlite3.Connection] = []


def path_from_url(url: str) -> str:
    """The file named by a ``sqlite://`` URL (``sqlite://`` alone: the default file)."""
    rest = url.partition("://")[2].split("?", 1)[0]
    if rest in ("", "/"):
        return DEFAULT_PATH
    if not rest.startswith("/"):
        raise ImproperlyConfigured(
            f"SQLite broker URL {url!r} has a host part; write sqlite:///relative/path.db "
            "or sqlite:////absolute/path.db"
        )
    path = rest[1:]
    if path == ":memory:":
        raise ImproperlyConfigured(
            "An in-memory SQLite database cannot be shared between connections; "
            "use memory:// for an in-process broker"
        )
    return os.path.expanduser(path)


def _set_up(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(sql.SCHEMA)


class SQLiteTransport(Transport):
    """A broker in one SQLite file (WAL mode), safe for many processes on one machine."""

    schemes = ("sqlite", "sqla+sqlite")
    supports_priority = True
    supports_delayed_delivery = True
    priority_higher_first = True

    def __init__(self, url: str = "sqlite://", options: Mapping[str, Any] | None = None) -> None:
        super().__init__(url, options)
        self.path = os.path.abspath(path_from_url(url))
        self.visibility_timeout = number(self.options, "visibility_timeout", 3600.0)
        self.busy_timeout = number(self.options, "busy_timeout", 30.0)
        self.polling_interval = number(self.options, "polling_interval", 0.05)
        self.fanout_retention = number(self.options, "fanout_retention", 60.0)
        self._notifier = wakeup_for(self.path)
        # A consumer waits out a full disk instead of failing (and stopping its worker).
        self._space = SpaceWait(self.path, logger)
        self._conn: sqlite3.Connection | None = None
        self._reset_process_state()
        forksafe.guard(self)
        self._last_served: str | None = None
        self._backoff = 0.001  # idle polling delay, carried between gets (see get)
        self._next_prune = 0.0
        # A client that creates the file is alone with it: the warning of _warn_if_alone.
        self._created = False
        self._consumed = False

    def _reset_process_state(self) -> None:
        """Per-process identity: a fresh consumer token, lock and no held rows."""
        self._pid = forksafe.pid()
        self._lock = threading.Lock()
        self.consumer = uuid.uuid4().hex
        self._held: set[int] = set()

    # -- connection ----------------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        """This process's connection, opened on first use; caller holds the lock."""
        if self._conn is None:
            # timeout=0: SQLite's own busy handler sleeps 1, 2, 5, 10... ms, so a process that
            # is refused the write lock loses it again and again to one that is not; _retry
            # below waits in steps of a tenth of a millisecond instead.
            self._created = self._created or not os.path.exists(self.path)
            problem = unwritable(self.path)
            if problem is not None:
                raise OperationalError(problem)
            try:
                conn = sqlite3.connect(
                    self.path, timeout=0, isolation_level=None, check_same_thread=False
                )
            except (sqlite3.Error, OSError) as exc:
                problem = cannot_write_text(self.path, exc)
                if problem is None:
                    problem = f"Cannot open SQLite broker {self.path!r}: {exc}"
                raise OperationalError(problem) from exc
            try:
                self._retry(lambda: _set_up(conn))
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _retry(self, action: Callable[[], _T]) -> _T:
        """Run ``action`` again while the file is locked, for up to ``busy_timeout`` seconds."""
        return retry_locked(action, self.busy_timeout)

    @contextmanager
    def _locked(self) -> Iterator[sqlite3.Connection]:
        """The connection under this transport's lock, reopened after ``fork``."""
        if self._pid != forksafe.pid():
            if self._conn is not None:
                _ABANDONED.append(self._conn)
                self._conn = None
            self._reset_process_state()
        with self._lock:
            try:
                yield self._connection()
            except sqlite3.Error as exc:
                problem = cannot_write_text(self.path, exc)
                if problem is not None:
                    raise OperationalError(problem) from exc
                raise OperationalError(f"SQLite broker {self.path!r}: {exc}") from exc

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: the write lock is taken before reading."""
        with self._locked() as conn:
            self._retry(lambda: conn.execute("BEGIN IMMEDIATE"))
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:  # some errors already rolled back
                    conn.execute("ROLLBACK")
                raise
            try:
                conn.execute("COMMIT")
            except sqlite3.Error:  # e.g. a full disk: the next BEGIN must start afresh
                if conn.in_transaction:
                    with suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise

    def _waiting(self, action: Callable[[], _T], what: str) -> _T:
        """A consumer's write, tried again while the disk is full (the rows it holds stay
        leased to it meanwhile; nothing is acknowledged before it is written)."""
        return self._space.call(action, what, self._abandoned)

    def _read(self, query: str, params: Sequence[Any] = ()) -> list[Any]:
        """Rows of one read-only statement (WAL readers are rarely refused; retried if so)."""
        with self._locked() as conn:
            return self._retry(lambda: conn.execute(query, params).fetchall())

    def open(self) -> None:
        with self._locked():
            pass

    def close(self) -> None:
        """Give back this consumer's unacknowledged rows, then close the connection."""
        if self._pid == forksafe.pid() and self._conn is not None:
            held = sorted(self._held)
            if held:
                self._unclaim(held)
            with self._lock:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None

    # -- topology ------------------------------------------------------------------------
    def declare_queue(self, queue: Queue) -> None:
        with self._write() as conn:
            conn.execute(sql.DECLARE_QUEUE, (queue.name, time.time()))
        if queue.exchange is not None and queue.exchange.name:
            self.declare_exchange(queue.exchange)
            self.bind(queue.name, queue.exchange.name, queue.key)

    def bind(self, queue: str, exchange: str, routing_key: str) -> None:
        with self._write() as conn:
            conn.execute(sql.BIND, (exchange, routing_key, queue))

    def _targets(self, conn: sqlite3.Connection, exchange: str, routing_key: str) -> list[str]:
        if not exchange:
            return [routing_key]
        declared = self.exchanges.get(exchange)
        kind = declared.type if declared is not None else "direct"
        return route(kind, conn.execute(sql.BINDINGS, (exchange,)).fetchall(), routing_key)

    # -- producing -----------------------------------------------------------------------
    def publish_many(
        self, items: Sequence[tuple[Message, str, str]], *, not_before: float | None = None
    ) -> None:
        """Insert every routed copy in one transaction (encoding errors raise before writing)."""
        if not items:
            return
        visible_at = time.time() if not_before is None else not_before
        with self._write() as conn:
            rows = routed_rows(
                items, sql.encode, lambda e, k: self._targets(conn, e, k), visible_at
            )
            conn.executemany(sql.INSERT, rows)
        self._notifier.notify()
        self._warn_if_alone()

    def _warn_if_alone(self) -> None:
        """The first send into a file this process created, before it ever consumed: no
        worker has used this file, and one started in another directory uses another."""
        if self._created and not self._consumed:
            self._created = False
            logger.warning(
                "Sent to a new broker file %s that no worker has used yet. A worker started "
                "in another directory uses another file: point both at this one with "
                "broker_url='sqlite:///%s' (or start the worker in this directory).",
                self.path,
                self.path,
            )

    # -- consuming -----------------------------------------------------------------------
    def get(
        self, queues: Sequence[str], *, max_messages: int = 1, timeout: float | None = None
    ) -> list[Delivery]:
        """Claim up to ``max_messages``; when idle, poll with a backoff capped by the option."""
        if max_messages < 1 or not queues:
            return []
        self._consumed = True
        seen = self._notifier.generation
        taken = self._waiting(lambda: self._claim(queues, max_messages), "claiming messages")
        if taken:
            self._backoff = 0.001
        if taken or timeout is None:
            return taken
        deadline = time.monotonic() + timeout
        # The backoff carries over from one idle get to the next (a worker asks again every
        # second or so): an idle consumer probes about once per polling_interval instead of
        # starting again at 1 ms each time. A wake-up (a send from this machine) resets it.
        delay = self._backoff
        while (remaining := deadline - time.monotonic()) > 0:
            self._notifier.wait(seen, min(delay, remaining))
            if self._notifier.generation != seen:
                seen, delay = self._notifier.generation, 0.001
            else:
                delay = min(delay * 2, max(self.polling_interval, 0.001))
            # A read-only probe first: idle pollers must not queue up for the write lock.
            if self._ready(queues) and (
                taken := self._waiting(
                    lambda: self._claim(queues, max_messages), "claiming messages"
                )
            ):
                self._backoff = 0.001
                return taken
        self._backoff = delay
        return []

    def _ready(self, queues: Sequence[str]) -> bool:
        now = time.time()
        probe = sql.READY_PROBE.format(marks=",".join("?" * len(queues)))
        return bool(self._read(probe, (*queues, now, now))[0][0])

    def ack_and_get(
        self, queues: Sequence[str], acks: Sequence[Delivery], *, max_messages: int
    ) -> list[Delivery]:
        """``AckAndGet``: delete the acknowledged rows and claim up to ``max_messages`` in one
        transaction (one write lock, one commit), never waiting for a message."""
        ids = [int(d.delivery_tag) for d in acks]
        if max_messages < 1 or not queues:
            self._waiting(lambda: self._delete(ids), "acknowledging")
            return []
        self._consumed = True
        taken = self._waiting(
            lambda: self._claim(queues, max_messages, ids), "acknowledging and claiming"
        )
        if taken:
            self._backoff = 0.001
        return taken

    def _claim(
        self, queues: Sequence[str], limit: int, acked: Sequence[int] = ()
    ) -> list[Delivery]:
        """Lease up to ``limit`` ready rows, queues in round-robin order, in one transaction
        (which first deletes the ``acked`` rows)."""
        now = time.time()
        expires = now + self.visibility_timeout
        taken: list[Delivery] = []
        with self._write() as conn:
            self._delete_rows(conn, acked)
            conn.execute(sql.RECLAIM_EXPIRED, (now,))
            for queue in fair_order(queues, self._last_served):
                want = limit - len(taken)
                if want <= 0:
                    break
                rows = conn.execute(sql.CLAIM, (self.consumer, expires, queue, now, want))
                batch = sorted(rows.fetchall(), key=sql.order_key)
                if batch:
                    self._last_served = queue
                    taken.extend(sql.delivery(row, self) for row in batch)
            self._held.update(int(d.delivery_tag) for d in taken)
        return taken

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        ids = [int(d.delivery_tag) for d in deliveries]
        self._waiting(lambda: self._delete(ids), "acknowledging")

    def reject(self, deliveries: Sequence[Delivery], *, requeue: bool = False) -> None:
        ids = [int(d.delivery_tag) for d in deliveries]
        if not ids:
            return
        if not requeue:
            self._waiting(lambda: self._delete(ids), "rejecting")
            return
        self._waiting(lambda: self._requeue(ids), "requeueing")
        self._notifier.notify()

    def _requeue(self, ids: list[int]) -> None:
        now = time.time()
        with self._write() as conn:
            conn.executemany(sql.REQUEUE_AT_END, [(now, i, self.consumer) for i in ids])
            conn.executemany(sql.DELETE_HELD, [(i, self.consumer) for i in ids])
            self._held.difference_update(ids)

    def restore(self, deliveries: Sequence[Delivery]) -> None:
        """Unclaim in place: the rows keep their ids, so they come back before newer ones."""
        ids = [int(d.delivery_tag) for d in deliveries]
        self._waiting(lambda: self._unclaim(ids), "giving back messages")

    def defer(self, delivery: Delivery, until: float) -> None:
        tag = int(delivery.delivery_tag)

        def defer() -> None:
            with self._write() as conn:
                conn.execute(sql.DEFER, (until, tag, self.consumer))
                self._held.discard(tag)

        self._waiting(defer, "deferring a message")

    def extend(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return

        def extend() -> None:
            expires = time.time() + self.visibility_timeout
            with self._write() as conn:
                params = [(expires, int(d.delivery_tag), self.consumer) for d in deliveries]
                conn.executemany(sql.EXTEND, params)

        self._waiting(extend, "renewing leases")

    @property
    def lease_period(self) -> float:
        """``ConfirmsLeases``: the lease is ``visibility_timeout``."""
        return float(self.visibility_timeout)

    def confirm(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        """Renew the leases still ours (the row's ``claimed_by``) and return those deliveries;
        a row whose lease ran out was reclaimed and may be another consumer's now."""
        if not deliveries:
            return []

        def confirm() -> list[Delivery]:
            expires = time.time() + self.visibility_timeout
            ours: list[Delivery] = []
            with self._write() as conn:
                for delivery in deliveries:
                    tag = int(delivery.delivery_tag)
                    if conn.execute(sql.EXTEND, (expires, tag, self.consumer)).rowcount:
                        ours.append(delivery)
                    else:
                        self._held.discard(tag)
            return ours

        return self._waiting(confirm, "confirming leases")

    def _delete(self, ids: list[int]) -> None:
        if not ids:
            return
        with self._write() as conn:
            self._delete_rows(conn, ids)

    def _delete_rows(self, conn: sqlite3.Connection, ids: Sequence[int]) -> None:
        """Within a write transaction: delete rows ``ids`` (acknowledged) and forget them."""
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            conn.execute(sql.DELETE_IDS.format(marks=",".join("?" * len(chunk))), chunk)
        self._held.difference_update(ids)

    def _unclaim(self, ids: list[int]) -> None:
        if not ids:
            return
        with self._write() as conn:
            conn.executemany(sql.UNCLAIM, [(i, self.consumer) for i in ids])
            self._held.difference_update(ids)
        self._notifier.notify()

    # -- queue admin ---------------------------------------------------------------------
    def purge(self, queue: str) -> int:
        with self._write() as conn:
            return conn.execute(sql.PURGE, (queue,)).rowcount

    def size(self, queue: str) -> int:
        """Waiting rows of ``queue``, delayed ones included (leased ones are not)."""
        count: int = self._read(sql.SIZE, (queue,))[0][0]
        return count

    # -- fanout --------------------------------------------------------------------------
    def fanout_publish(self, exchange: str, message: Message, routing_key: str = "") -> None:
        """Append to the fanout log; subscribers read rows newer than their subscription."""
        fields = sql.encode(message)
        now = time.time()
        with self._write() as conn:
            conn.execute(sql.FANOUT_INSERT, (exchange, routing_key, *fields[1:], now))
            if now >= self._next_prune:
                self._next_prune = now + min(5.0, self.fanout_retention)
                conn.execute(sql.FANOUT_PRUNE, (now - self.fanout_retention,))
        self._notifier.notify()

    def fanout_subscribe(self, exchange: str, pattern: str = "#") -> FanoutSubscription:
        last: int = self._read(sql.FANOUT_LAST_ID)[0][0]
        return _SQLiteSubscription(self, exchange, pattern or "#", last)

    def _fanout_since(self, exchange: str, last: int) -> list[tuple[Any, ...]]:
        return self._read(sql.FANOUT_SINCE, (last, exchange))


#: The longest idle wait of a fanout subscriber (a worker's mailbox, an event receiver)
#: between polls: every publish on this machine wakes it at once, so its polling is only a
#: safety net, slower than the consumer's (a remote control command is not a task).
FANOUT_POLL_CAP = 0.25


class _SQLiteSubscription(FanoutSubscription):
    """Reads the fanout log of one exchange from the row after the last one it saw."""

    def __init__(self, transport: SQLiteTransport, exchange: str, pattern: str, last: int) -> None:
        self._transport = transport
        self.exchange = exchange
        self.pattern = pattern
        self._last = last
        self._closed = False
        self._delay = 0.001  # idle polling delay

    def get(self, timeout: float | None = None) -> list[Message]:
        notifier = self._transport._notifier
        deadline = time.monotonic() + (timeout or 0.0)
        while not self._closed:
            seen = notifier.generation
            messages = self._poll()
            remaining = deadline - time.monotonic()
            if messages:
                self._delay = 0.001
            if messages or remaining <= 0:
                return messages
            notifier.wait(seen, min(self._delay, remaining))
            if notifier.generation != seen:  # a write on this machine: look at once
                self._delay = 0.001
            else:  # the backoff carries over between gets (an idle mailbox asks twice a second)
                cap = max(self._transport.polling_interval, FANOUT_POLL_CAP)
                self._delay = min(self._delay * 2, cap)
        return []

    def _poll(self) -> list[Message]:
        rows = self._transport._fanout_since(self.exchange, self._last)
        if rows:
            self._last = rows[-1][0]
        return [sql.fanout_message(row) for row in rows if topic_matches(self.pattern, row[1])]

    def close(self) -> None:
        self._closed = True


__all__ = ["DEFAULT_PATH", "SQLiteTransport", "path_from_url"]
