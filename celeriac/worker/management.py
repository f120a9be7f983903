"""Remote-control commands that change the worker: pool size, queues, shutdown (Celery's
request and reply shapes). ``autoscale`` is not here (see the autoscaler)."""

from __future__ import annotations

import logging
from typing import Any

from celeriac.protocol.entities import Exchange, Queue
from celeriac.worker.commands import Consuming, ControlContext, command, error, ok

logger = logging.getLogger("celeriac.worker.control")


@command("pool_grow")
def pool_grow(ctx: ControlContext, n: int = 1, **_: Any) -> dict[str, Any]:
    try:
        ctx.pool.grow(int(n))
    except NotImplementedError as exc:
        return error(str(exc))
    return ok("pool will grow")


@command("pool_shrink")
def pool_shrink(ctx: ControlContext, n: int = 1, **_: Any) -> dict[str, Any]:
    try:
        ctx.pool.shrink(int(n))
    except NotImplementedError as exc:
        return error(str(exc))
    return ok("pool will shrink")


@command("add_consumer")
def add_consumer(
    ctx: ControlContext,
    queue: str,
    exchange: str | None = None,
    exchange_type: str | None = None,
    routing_key: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    consumer = ctx.consumer
    if not isinstance(consumer, Consuming):
        return error("this worker cannot change its queues")
    if queue in consumer.queues:
        return ok(f"already consuming from {queue!r}")
    if exchange is None and exchange_type in (None, "direct") and routing_key is None:
        declared = ctx.app.router.queue(queue)  # task_queues, or Celery's automatic queue
    else:
        declared = Queue(
            queue,
            Exchange(exchange or queue, exchange_type or "direct"),
            routing_key=routing_key or queue,
        )
    consumer.add_queue(declared)
    logger.info("Started consuming from %s", queue)
    return ok(f"add consumer {queue}")


@command("cancel_consumer")
def cancel_consumer(ctx: ControlContext, queue: str, **_: Any) -> dict[str, Any]:
    consumer = ctx.consumer
    if not isinstance(consumer, Consuming):
        return error("this worker cannot change its queues")
    if not consumer.cancel_queue(queue):
        return error(f"not consuming from {queue}")
    logger.info("Stopped consuming from %s", queue)
    return ok(f"no longer consuming from {queue}")


@command("shutdown")
def shutdown(ctx: ControlContext, msg: str = "Got shutdown from remote", **_: Any) -> Any:
    logger.warning(msg)
    if ctx.shutdown is None:
        return error("this worker cannot be shut down remotely")
    ctx.shutdown()
    return ok("shutting down")


__all__ = ["add_consumer", "cancel_consumer", "pool_grow", "pool_shrink", "shutdown"]
