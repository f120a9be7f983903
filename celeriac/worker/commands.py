"""The worker's side of remote control: a mailbox thread and a table of commands.

Requests arrive on the ``celery.pidbox`` fanout exchange (Celery's message: body
``{"method", "arguments", "destination", "pattern", "matcher", "ticket", "reply_to"}``).
A worker runs a request only if it is selected (``destination`` null or listing its node
name, or ``pattern`` + ``matcher`` matching it) and replies on ``reply.celery.pidbox`` with
``{hostname: result}`` when the request carries ``reply_to`` and ``ticket``.

Extend with :func:`command`: ``@command("name")`` on ``def handler(ctx, **arguments)``.
"""

from __future__ import annotations

import fnmatch
import itertools
import logging
import re
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from celeriac.exceptions import EncodeError
from celeriac.protocol import serialization
from celeriac.protocol.message import Message
from celeriac.transports.capabilities import Fanout

if TYPE_CHECKING:
    from celeriac.app.base import Celery
    from celeriac.app.cluster import ClusterStore
    from celeriac.events.node import NodeEvents
    from celeriac.protocol.entities import Queue
    from celeriac.transports.base import FanoutSubscription, Transport
    from celeriac.worker.autoscale import Autoscaler
    from celeriac.worker.persistent import StateDB
    from celeriac.worker.pools.base import BasePool
    from celeriac.worker.ratelimit import RateLimiter
    from celeriac.worker.state import WorkerState

logger = logging.getLogger("celeriac.worker.control")

PIDBOX_EXCHANGE = "celery.pidbox"
REPLY_EXCHANGE = "reply.celery.pidbox"
#: How often revoked ids are re-read from the cluster store (seconds).
REVOKED_SYNC_EVERY = 10.0


class Sweeper(Protocol):
    """What holds requests that a revocation may concern (the consumer)."""

    def request_sweep(self) -> None: ...


@runtime_checkable
class Consuming(Protocol):
    """What consumes the worker's queues and can change them (``add_consumer``,
    ``cancel_consumer``, ``active_queues``): the consumer, or a pool that consumes."""

    @property
    def queues(self) -> list[str]: ...

    def add_queue(self, queue: Queue) -> None: ...

    def cancel_queue(self, name: str) -> bool: ...


#: ``query(method, arguments)``: the answers of pool processes that keep their own state.
Query = Callable[[str, dict[str, Any]], list[Any]]


#: ``relay(method, arguments)``: run a command in the pool's processes too.
Relay = Callable[[str, dict[str, Any]], None]


@dataclass
class ControlContext:
    """What command handlers may read and change."""

    app: Celery
    hostname: str
    state: WorkerState
    consumer: Sweeper
    pool: BasePool
    limiter: RateLimiter
    statedb: StateDB | None = None
    store: ClusterStore | None = None
    clock: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    #: Set when pool processes consume for themselves and keep their own state.
    relay: Relay | None = None
    #: This node's events (the task-events switch), and a way to send a heartbeat now.
    events: NodeEvents | None = None
    beat_now: Callable[[], None] | None = None
    #: Set when pool processes consume for themselves: ask them what they hold and run.
    query: Query | None = None
    #: A warm shutdown of the whole worker (the ``shutdown`` command).
    shutdown: Callable[[], None] | None = None
    #: Set with ``worker --autoscale``.
    autoscaler: Autoscaler | None = None

    def revoked_changed(self, ids: Sequence[str] = ()) -> None:
        if self.statedb is not None:
            self.statedb.save(self.state)
        self.consumer.request_sweep()
        if self.relay is not None and ids:
            self.relay("revoke", {"task_id": list(ids)})


Handler = Callable[..., Any]
#: method name -> handler(ctx, **arguments)
COMMANDS: dict[str, Handler] = {}


def command(name: str) -> Callable[[Handler], Handler]:
    """Register a handler for ``method == name``."""

    def register(fun: Handler) -> Handler:
        COMMANDS[name] = fun
        return fun

    return register


def ok(text: Any) -> dict[str, Any]:
    return {"ok": text}


def error(text: Any) -> dict[str, Any]:
    return {"error": text}


@command("ping")
def ping(ctx: ControlContext, **_: Any) -> dict[str, Any]:
    return ok("pong")


@command("revoke")
def revoke(
    ctx: ControlContext,
    task_id: str | list[str],
    terminate: bool = False,
    signal: str | int | None = None,
    **_: Any,
) -> dict[str, Any]:
    """Remember the ids as revoked (and persist them); with ``terminate``, kill running ones."""
    ids = [task_id] if isinstance(task_id, str) else [str(t) for t in task_id]
    now = time.time()
    ctx.state.revoke_many(dict.fromkeys(ids, now))
    ctx.revoked_changed(ids)
    idstr = ", ".join(ids)
    if terminate:
        return _terminate(ctx, ids, _signum(signal))
    logger.info("Tasks flagged as revoked: %s", idstr)
    return ok(f"tasks {idstr} flagged as revoked")


@command("terminate")
def terminate(
    ctx: ControlContext, signal: str | int | None, task_id: str | list[str], **_: Any
) -> dict[str, Any]:
    """Celery's ``terminate`` (``celery control terminate SIGKILL <id>``, Flower's
    "terminate" button): ``revoke`` with ``terminate=True``."""
    reply: dict[str, Any] = revoke(ctx, task_id, terminate=True, signal=signal)
    return reply


def _terminate(ctx: ControlContext, ids: list[str], signum: int) -> dict[str, Any]:
    active = set(ctx.state.active_ids()) | set(ctx.pool.running_ids())
    done: list[str] = []
    for task_id in ids:
        if task_id not in active:
            continue
        ctx.state.terminated[task_id] = signum
        if ctx.pool.terminate_job(task_id, signum):
            done.append(task_id)
        else:
            ctx.state.terminated.pop(task_id, None)
            logger.warning(
                "The %s pool cannot terminate running task %s; it is only flagged as revoked",
                ctx.pool.name,
                task_id,
            )
    if not done:
        return ok("terminate: tasks unknown")
    return ok(f"terminate: {', '.join(done)}")


def _signum(value: str | int | None) -> int:
    if value is None or value == "":
        return int(signal.SIGTERM)
    if isinstance(value, int) or str(value).isdigit():
        return int(value)
    name = str(value).upper()
    return int(getattr(signal, name if name.startswith("SIG") else f"SIG{name}"))


@command("autoscale")
def autoscale(
    ctx: ControlContext, max: int | None = None, min: int | None = None, **_: Any
) -> dict[str, Any]:
    """Celery's ``autoscale``: new bounds for a worker started with ``--autoscale``."""
    if ctx.autoscaler is None:
        return error("Autoscale not enabled")
    high, low = ctx.autoscaler.update(
        None if max is None else int(max), None if min is None else int(min)
    )
    return ok(f"autoscale now max={high} min={low}")


@command("pool_restart")
def pool_restart(ctx: ControlContext, **_: Any) -> dict[str, Any]:
    """Celery's ``pool_restart`` (Flower's "restart pool" button) answers with an error: a
    worker reloads code by being restarted (``celeriac multi restart``, a supervisor)."""
    return error(
        "Pool restarts not enabled: celeriac does not reload modules in a running pool; "
        "restart the worker instead (celeriac multi restart, or your process supervisor)"
    )


@command("rate_limit")
def rate_limit(
    ctx: ControlContext, task_name: str, rate_limit: Any = None, **_: Any
) -> dict[str, Any]:
    try:
        ctx.limiter.set_rate(task_name, rate_limit)
    except KeyError:
        return error(f"unknown task {task_name!r}")
    except ValueError as exc:
        return error(f"Invalid rate limit string: {exc}")
    if ctx.relay is not None:
        ctx.relay("rate_limit", {"task_name": task_name, "rate_limit": rate_limit})
    if not rate_limit:
        return ok("rate limit disabled successfully")
    return ok("new rate limit set successfully")


def set_time_limits(
    app: Celery, task_name: str, hard: float | None = None, soft: float | None = None
) -> bool:
    """Set a task's hard and soft limits in this process; False if there is no such task."""
    try:
        task = app.tasks[task_name]
    except KeyError:
        return False
    task.time_limit = hard
    task.soft_time_limit = soft
    return True


@command("time_limit")
def time_limit(
    ctx: ControlContext,
    task_name: str,
    hard: float | None = None,
    soft: float | None = None,
    **_: Any,
) -> dict[str, Any]:
    if not set_time_limits(ctx.app, task_name, hard, soft):
        return error(f"unknown task {task_name!r}")
    ctx.pool.time_limits_changed(task_name, hard, soft)
    if ctx.relay is not None:
        ctx.relay("time_limit", {"task_name": task_name, "hard": hard, "soft": soft})
    return ok("time limits set successfully")


@command("enable_events")
def enable_events(ctx: ControlContext, **_: Any) -> dict[str, Any]:
    """Start sending task events (``-E`` at run time); every process sees the switch."""
    if ctx.events is None:
        return error("this worker cannot send events")
    if ctx.events.task_events:
        return ok("task events already enabled")
    ctx.events.task_events = True
    logger.info("Events of group {task} enabled by remote.")
    return ok("task events enabled")


@command("disable_events")
def disable_events(ctx: ControlContext, **_: Any) -> dict[str, Any]:
    if ctx.events is None or not ctx.events.task_events:
        return ok("task events already disabled")
    ctx.events.task_events = False
    logger.info("Events of group {task} disabled by remote.")
    return ok("task events disabled")


@command("heartbeat")
def heartbeat(ctx: ControlContext, **_: Any) -> None:
    """Send a ``worker-heartbeat`` now (a monitor starting up asks for one)."""
    if ctx.beat_now is not None:
        ctx.beat_now()


def selected(body: dict[str, Any], hostname: str) -> bool:
    """Celery's selection: ``destination`` list, or ``pattern`` with ``matcher`` glob/pcre."""
    destination = body.get("destination")
    pattern = body.get("pattern")
    if destination:
        return hostname in destination
    if pattern:
        if body.get("matcher") == "pcre":
            return re.search(pattern, hostname) is not None
        return fnmatch.fnmatch(hostname, pattern)
    return True


class Mailbox:
    """A thread reading ``celery.pidbox`` and running commands against ``ctx``."""

    def __init__(self, ctx: ControlContext) -> None:
        self.ctx = ctx
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._transport: Transport | None = None
        self._subscription: FanoutSubscription | None = None
        self._next_sync = 0.0

    def start(self) -> None:
        """Subscribe now (so nothing sent after ``start`` is missed), then read in a thread."""
        transport = self.ctx.app.connection()
        transport.open()
        self._transport = transport
        if isinstance(transport, Fanout):
            self._subscription = transport.fanout_subscribe(PIDBOX_EXCHANGE)
        else:
            logger.warning("%s has no fanout: remote control is off", type(transport).__name__)
        self.sync_revoked()
        self._thread = threading.Thread(target=self._run, name="celeriac-mailbox", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        if self._subscription is not None:
            self._subscription.close()
        if self._transport is not None:
            self._transport.close()

    def sync_revoked(self) -> None:
        """Merge revocations from the cluster store (made while this worker was away)."""
        self._next_sync = time.monotonic() + REVOKED_SYNC_EVERY
        store = self.ctx.store
        if store is None or not self.ctx.app.conf.worker_revoke_ttl:
            return
        try:
            revoked = store.revoked()
        except Exception as exc:
            logger.warning("Could not read revoked ids from the cluster store: %r", exc)
            return
        new = self.ctx.state.revoke_many(revoked)
        if new:
            self.ctx.revoked_changed(new)

    def _run(self) -> None:
        failing = False  # the broker is away: one warning, then one line when it is back
        while not self._stop.is_set():
            if time.monotonic() >= self._next_sync:
                self.sync_revoked()
            if self._subscription is None:
                self._stop.wait(0.5)
                continue
            try:
                messages = self._subscription.get(timeout=0.5)
            except Exception as exc:  # the broker hiccupped: keep the worker alive
                (logger.debug if failing else logger.warning)(
                    "Remote control read failed (retrying every second): %r", exc
                )
                failing = True
                self._stop.wait(1.0)
                continue
            if failing:
                failing = False
                logger.warning("Remote control: reading commands again")
            for message in messages:
                self.handle(message)

    def handle(self, message: Message) -> Any:
        """Decode, select, dispatch and reply; never raises."""
        try:
            body = serialization.loads(
                message.body, message.content_type, message.content_encoding, accept=None
            )
        except Exception as exc:
            logger.error("Undecodable remote control message: %r", exc)
            return None
        if not isinstance(body, dict) or not selected(body, self.ctx.hostname):
            return None
        method = body.get("method")
        handler = COMMANDS.get(str(method))
        try:
            if handler is None:
                result: Any = error(f"No such command: {method!r}")
            else:
                result = handler(self.ctx, **dict(body.get("arguments") or {}))
        except Exception as exc:
            logger.exception("Remote control command %r failed", method)
            result = error(repr(exc))
        self._reply(body, result)
        return result

    def _reply(self, body: dict[str, Any], result: Any) -> None:
        reply_to, ticket = body.get("reply_to"), body.get("ticket")
        if not reply_to or not ticket or self._transport is None:
            return
        # Celery's mailbox answers in task_serializer (signed, with setup_security()).
        answer = {self.ctx.hostname: result}
        try:
            data, content_type, encoding = serialization.dumps(
                answer, self.ctx.app.conf.task_serializer
            )
        except EncodeError:  # e.g. msgpack cannot hold some value: json holds all replies
            data, content_type, encoding = serialization.dumps(answer, "json")
        reply = Message(
            body=data,
            content_type=content_type,
            content_encoding=encoding,
            headers={"ticket": ticket, "clock": next(self.ctx.clock)},
            properties={"delivery_mode": 1, "priority": 0},
        )
        try:
            self._transport.publish(
                reply,
                exchange=reply_to.get("exchange") or REPLY_EXCHANGE,
                routing_key=reply_to["routing_key"],
            )
        except Exception as exc:
            logger.warning("Could not send the remote control reply: %r", exc)


__all__ = [
    "COMMANDS",
    "PIDBOX_EXCHANGE",
    "REPLY_EXCHANGE",
    "Consuming",
    "ControlContext",
    "Mailbox",
    "Query",
    "Relay",
    "Sweeper",
    "command",
    "error",
    "ok",
    "selected",
    "set_time_limits",
]
