"""``app.control``: remote control requests to workers, with Celery's pidbox messages.

A request is published to the ``celery.pidbox`` fanout exchange with headers
``{"clock", "expires"}`` and body ``{"method", "arguments", "destination", "pattern",
"matcher"}`` (plus ``ticket`` and ``reply_to`` when replies are wanted), so real Celery workers
obey celeriac clients and the reverse. Replies come back on ``reply.celery.pidbox`` to a queue
named after this client's mailbox id.

Beyond Celery, ``revoke`` also records the ids in the cluster store for
``worker_revoke_ttl`` seconds, so workers that are offline or restarting honour it too.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from celeriac.app.cluster import cluster_store_for
from celeriac.app.inspect import Inspect
from celeriac.exceptions import OperationalError
from celeriac.protocol import serialization
from celeriac.protocol.entities import Exchange, Queue
from celeriac.protocol.message import Message
from celeriac.transports.capabilities import Fanout
from celeriac.utils.missing import REMOTE_CONTROL

if TYPE_CHECKING:
    from celeriac.app.base import Celery
    from celeriac.transports.base import Transport

logger = logging.getLogger("celeriac.control")

PIDBOX_EXCHANGE = "celery.pidbox"
REPLY_EXCHANGE = "reply.celery.pidbox"
TERM_SIGNAME = "SIGTERM"
#: Seconds an unused reply queue lives on (kombu's ``reply_queue_expires``).
REPLY_QUEUE_EXPIRES = 10.0


def _not_yet(name: str) -> Callable[..., NoReturn]:
    """A Celery control method celeriac workers do not answer yet: raises when called."""

    def method(self: Control, *args: Any, **kwargs: Any) -> NoReturn:
        raise REMOTE_CONTROL.error(f"app.control.{name}()")

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"Celery's ``{name}``: not in celeriac yet (raises NotYetImplemented)."
    return method


class Control:
    """Client side of remote control for one app (``app.control``).

    Workers answer Celery's commands (``inspect()`` for the read-only ones); ``election``
    and ``revoke_by_stamped_headers`` raise :class:`~celeriac.exceptions.NotYetImplemented`
    saying what to use instead.
    """

    election = _not_yet("election")
    revoke_by_stamped_headers = _not_yet("revoke_by_stamped_headers")

    def __init__(self, app: Celery) -> None:
        self.app = app
        self._clock = itertools.count(1)
        self.oid = str(uuid.uuid4())
        # Requests of this app waiting for replies, by ticket: threads share one reply queue,
        # so a reply one thread reads for another's ticket is passed on here, not dropped.
        self._waiting: dict[str, list[Message]] = {}
        self._waiting_lock = threading.Lock()

    def inspect(
        self,
        destination: Sequence[str] | str | None = None,
        timeout: float = 1.0,
        callback: Callable[[dict[str, Any]], None] | None = None,
        connection: Transport | None = None,
        limit: int | None = None,
        pattern: str | None = None,
        matcher: str | None = None,
    ) -> Inspect:
        """Read-only questions to the workers: ``app.control.inspect().active()``."""
        return Inspect(
            self,
            destination=destination,
            timeout=timeout,
            callback=callback,
            connection=connection,
            limit=limit,
            pattern=pattern,
            matcher=matcher,
        )

    # -- commands ------------------------------------------------------------------------
    def purge(self, connection: Transport | None = None) -> int:
        """Delete every waiting message from the app's task queues; how many (Celery's
        ``app.control.purge()``: no undo)."""
        names = list(dict.fromkeys(queue.name for queue in self.app.default_queues()))
        if connection is not None:
            return sum(connection.purge(name) for name in names)
        with self.app.connection() as conn:
            return sum(conn.purge(name) for name in names)

    discard_all = purge

    def pool_restart(
        self,
        modules: Sequence[str] | None = None,
        reload: bool = False,
        reloader: Any = None,
        destination: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> list[dict[str, Any]] | None:
        """Ask the workers to restart their pools (Celery's message; a celeriac worker, like a
        Celery one without ``worker_pool_restarts``, answers that pool restarts are not
        enabled: restart the worker to load new code)."""
        arguments = {"modules": list(modules) if modules else None, "reload": reload}
        arguments["reloader"] = reloader
        return self.broadcast("pool_restart", arguments, destination, **kwargs)

    def pool_grow(
        self, n: int = 1, destination: Sequence[str] | None = None, **kwargs: Any
    ) -> list[dict[str, Any]] | None:
        """Add ``n`` processes to the workers' pools."""
        return self.broadcast("pool_grow", {"n": n}, destination, **kwargs)

    def autoscale(
        self, max: int, min: int, destination: Sequence[str] | None = None, **kwargs: Any
    ) -> list[dict[str, Any]] | None:
        """New bounds for workers started with ``--autoscale`` (Celery's ``autoscale``)."""
        return self.broadcast("autoscale", {"max": max, "min": min}, destination, **kwargs)

    def pool_shrink(
        self, n: int = 1, destination: Sequence[str] | None = None, **kwargs: Any
    ) -> list[dict[str, Any]] | None:
        """Remove ``n`` processes from the workers' pools."""
        return self.broadcast("pool_shrink", {"n": n}, destination, **kwargs)

    def add_consumer(
        self,
        queue: str,
        exchange: str | None = None,
        exchange_type: str = "direct",
        routing_key: str | None = None,
        options: dict[str, Any] | None = None,
        destination: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> list[dict[str, Any]] | None:
        """Tell the workers to consume from ``queue`` too (declared if needed)."""
        arguments = dict(
            options or {},
            queue=queue,
            exchange=exchange,
            exchange_type=exchange_type,
            routing_key=routing_key,
        )
        return self.broadcast("add_consumer", arguments, destination, **kwargs)

    def cancel_consumer(
        self, queue: str, destination: Sequence[str] | None = None, **kwargs: Any
    ) -> list[dict[str, Any]] | None:
        """Tell the workers to stop consuming from ``queue``."""
        return self.broadcast("cancel_consumer", {"queue": queue}, destination, **kwargs)

    def enable_events(
        self, destination: Sequence[str] | None = None, **kwargs: Any
    ) -> list[dict[str, Any]] | None:
        """Turn task events on in the workers (as worker -E)."""
        return self.broadcast("enable_events", {}, destination, **kwargs)

    def disable_events(
        self, destination: Sequence[str] | None = None, **kwargs: Any
    ) -> list[dict[str, Any]] | None:
        return self.broadcast("disable_events", {}, destination, **kwargs)

    def heartbeat(
        self, destination: Sequence[str] | None = None, **kwargs: Any
    ) -> list[dict[str, Any]] | None:
        """Ask the workers for a worker-heartbeat event now."""
        return self.broadcast("heartbeat", {}, destination, **kwargs)

    def shutdown(
        self, destination: Sequence[str] | None = None, **kwargs: Any
    ) -> list[dict[str, Any]] | None:
        """Warm shutdown of the workers (running tasks finish first)."""
        return self.broadcast("shutdown", {}, destination, **kwargs)

    def revoke(
        self,
        task_id: str | Sequence[str],
        destination: Sequence[str] | None = None,
        terminate: bool = False,
        signal: str | None = TERM_SIGNAME,
        **kwargs: Any,
    ) -> list[dict[str, Any]] | None:
        """Tell workers to discard ``task_id`` (one id or a list); ``terminate`` kills it if
        running (prefork pool), with ``signal`` (default ``SIGTERM``)."""
        ids = [task_id] if isinstance(task_id, str) else [str(t) for t in task_id]
        self._store_revoked(ids)
        return self.broadcast(
            "revoke",
            destination=destination,
            arguments={
                "task_id": task_id if isinstance(task_id, str) else ids,
                "terminate": terminate,
                "signal": signal or TERM_SIGNAME,
            },
            **kwargs,
        )

    def terminate(
        self,
        task_id: str | Sequence[str],
        destination: Sequence[str] | None = None,
        signal: str = TERM_SIGNAME,
        **kwargs: Any,
    ) -> list[dict[str, Any]] | None:
        return self.revoke(task_id, destination, terminate=True, signal=signal, **kwargs)

    def rate_limit(
        self,
        task_name: str,
        rate_limit: str | int | float | None,
        destination: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> list[dict[str, Any]] | None:
        """Set a new rate limit for ``task_name`` on the workers (``None``/0: no limit)."""
        return self.broadcast(
            "rate_limit",
            destination=destination,
            arguments={"task_name": task_name, "rate_limit": rate_limit},
            **kwargs,
        )

    def time_limit(
        self,
        task_name: str,
        soft: float | None = None,
        hard: float | None = None,
        destination: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> list[dict[str, Any]] | None:
        return self.broadcast(
            "time_limit",
            destination=destination,
            arguments={"task_name": task_name, "hard": hard, "soft": soft},
            **kwargs,
        )

    def ping(
        self, destination: Sequence[str] | None = None, timeout: float = 1.0, **kwargs: Any
    ) -> list[dict[str, Any]]:
        answers = self.broadcast("ping", None, destination, reply=True, timeout=timeout, **kwargs)
        return answers or []

    # -- the request ---------------------------------------------------------------------
    def broadcast(
        self,
        command: str,
        arguments: dict[str, Any] | None = None,
        destination: Sequence[str] | None = None,
        connection: Transport | None = None,
        reply: bool = False,
        timeout: float | None = 1.0,
        limit: int | None = None,
        callback: Callable[[dict[str, Any]], None] | None = None,
        pattern: str | None = None,
        matcher: str | None = None,
        **extra: Any,
    ) -> list[dict[str, Any]] | None:
        """Send ``command`` to every selected worker; with ``reply``, collect answers for
        ``timeout`` seconds (or until ``limit`` answers) and return ``[{node: answer}, ...]``."""
        if destination is not None and isinstance(destination, str):
            raise ValueError("destination must be a list of node names")
        timeout = 1.0 if timeout is None else float(timeout)
        transport = connection or self.app.connection()
        own = connection is None
        ticket = str(uuid.uuid4()) if reply else None
        try:
            try:
                transport.open()
            except OperationalError:
                raise
            except Exception as exc:  # name the broker: a bare refusal says nothing of where
                raise OperationalError(
                    f"Could not reach the broker at {self.app.broker_url_display()}: {exc!r}. "
                    "Check broker_url (or -b) and that the broker is running."
                ) from exc
            if ticket is not None:
                transport.declare_queue(self._reply_queue())
                with self._waiting_lock:
                    self._waiting[ticket] = []
            body = {
                "method": command,
                "arguments": dict(arguments or {}, **extra),
                "destination": list(destination) if destination is not None else None,
                "pattern": pattern,
                "matcher": matcher,
            }
            if ticket is not None:
                body["ticket"] = ticket
                body["reply_to"] = {"exchange": REPLY_EXCHANGE, "routing_key": self.oid}
            if not isinstance(transport, Fanout):
                raise NotImplementedError(f"{type(transport).__name__} does not support fanout")
            transport.fanout_publish(PIDBOX_EXCHANGE, self._message(body, timeout))
            if ticket is None:
                return None
            expected = len(destination) if destination and limit is None else limit
            return self._collect(transport, ticket, timeout, expected, callback)
        finally:
            if ticket is not None:
                with self._waiting_lock:
                    self._waiting.pop(ticket, None)
            if own:
                transport.close()

    def _message(self, body: dict[str, Any], timeout: float) -> Message:
        data, content_type, encoding = serialization.dumps(body, self.app.conf.task_serializer)
        return Message(
            body=data,
            content_type=content_type,
            content_encoding=encoding,
            headers={"clock": next(self._clock), "expires": time.time() + timeout},
            properties={"delivery_mode": 2, "priority": 0},
        )

    def _reply_queue(self) -> Queue:
        # Not auto-deleted: replies are fetched (basic.get on RabbitMQ), never consumed, and
        # RabbitMQ may delete an auto-delete queue between two fetches. It expires instead,
        # unused for REPLY_QUEUE_EXPIRES seconds (kombu's reply queues expire too).
        return Queue(
            f"{self.oid}.{REPLY_EXCHANGE}",
            # As kombu declares it (transient, not auto-deleted): Celery workers declare it too.
            Exchange(REPLY_EXCHANGE, "direct", durable=False),
            routing_key=self.oid,
            durable=False,
            auto_delete=False,
            expires=REPLY_QUEUE_EXPIRES,
        )

    def _collect(
        self,
        transport: Transport,
        ticket: str,
        timeout: float,
        limit: int | None,
        callback: Callable[[dict[str, Any]], None] | None,
    ) -> list[dict[str, Any]]:
        queue = self._reply_queue().name
        replies: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            deliveries = transport.get([queue], max_messages=100, timeout=min(remaining, 0.25))
            if deliveries:
                transport.ack(deliveries)
            mine: list[Message] = []
            with self._waiting_lock:
                mine.extend(self._waiting.get(ticket, ()))
                self._waiting[ticket] = []
                for delivery in deliveries:
                    owner = delivery.message.headers.get("ticket")
                    if owner == ticket:
                        mine.append(delivery.message)
                    elif isinstance(owner, str) and owner in self._waiting:
                        self._waiting[owner].append(delivery.message)  # another thread's
                    # else: a late answer to a request that is over
            for message in mine:
                answer = serialization.loads(
                    message.body, message.content_type, message.content_encoding, accept=None
                )
                replies.append(answer)
                if callback is not None:
                    callback(answer)
            if limit is not None and len(replies) >= limit:
                break
        return replies

    def _store_revoked(self, ids: list[str]) -> None:
        ttl = self.app.conf.worker_revoke_ttl
        if not ttl:
            return
        try:
            store = cluster_store_for(self.app)
            if store is None:
                return
            try:
                store.add_revoked(ids, float(ttl))
            finally:
                store.close()
        except Exception as exc:  # the broadcast still reaches the workers that are up
            logger.warning("Could not record revoked ids in the cluster store: %r", exc)


__all__ = ["Control"]
