"""Running an ``async def`` task body to completion from synchronous code.

The prefork, threads and solo pools call task bodies synchronously. An ``async def`` task
returns a coroutine there; it runs with ``asyncio.run`` (a fresh loop per task, closed
afterwards, so nothing leaks between tasks). If a loop is already running in this thread
(an eager ``apply()`` inside an async task), the coroutine runs in a helper thread instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def _await(awaitable: Awaitable[T]) -> T:
    return await awaitable


def _running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def run_awaitable(awaitable: Awaitable[T]) -> T:
    """Run ``awaitable`` to completion and return its result (exceptions propagate)."""
    coro: Coroutine[Any, Any, T] = (
        awaitable if asyncio.iscoroutine(awaitable) else _await(awaitable)
    )
    if not _running():
        return asyncio.run(coro)
    # A loop runs in this thread already and cannot be re-entered: use another thread,
    # carrying the context (the task's request) along.
    context = contextvars.copy_context()
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="celeriac-aio") as ex:
        return ex.submit(context.run, asyncio.run, coro).result()


def is_async_task(task: Any) -> bool:
    """Whether ``task``'s body is an ``async def`` (function tasks and ``run`` overrides)."""
    candidates = (getattr(task, "_fun", None), vars(task).get("_orig_run"), task.run)
    return any(inspect.iscoroutinefunction(c) for c in candidates if c is not None)


__all__ = ["is_async_task", "run_awaitable"]
