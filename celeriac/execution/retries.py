"""``Task.retry()`` and ``autoretry_for``: Celery's retry semantics, message for message.

A retry re-publishes the task under the *same id* with ``retries + 1``, an ETA, the
request's root/parent/group/chain/link options and its first sender's ``origin``, to the
queue it came from (or ``queue=``), and raises :class:`~celeriac.exceptions.Retry` so the
worker acknowledges the original message. In a worker, RETRY is stored *before* the new
message is sent (Celery stores it after): a next attempt that runs and finishes at once, in
another thread or worker, can then never have its final state replaced by this RETRY.
"""

from __future__ import annotations

import functools
import random
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn

from celeriac.exceptions import Ignore, Reject, Retry
from celeriac.execution.aio import is_async_task
from celeriac.execution.execute import store_retry_state
from celeriac.protocol.options import SendOptions

if TYPE_CHECKING:
    from celeriac.app.task import Task
    from celeriac.execution.context import Context


@dataclass(frozen=True, slots=True)
class RetryCall:
    """What a retry sends (``Retry.sig``): arguments and ``apply_async`` options."""

    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    options: Mapping[str, Any] = field(default_factory=dict)


def raise_with_context(exc: BaseException) -> NoReturn:
    """Raise ``exc`` chained to the exception being handled, if any (Celery's helper)."""
    current = sys.exc_info()[1]
    if current is None:
        raise exc
    if current is exc:
        raise exc
    raise exc from current


def retry(
    task: Task[Any, Any],
    args: Sequence[Any] | None = None,
    kwargs: Mapping[str, Any] | None = None,
    exc: BaseException | None = None,
    throw: bool = True,
    eta: datetime | None = None,
    countdown: float | None = None,
    max_retries: int | None = None,
    **options: Any,
) -> Retry:
    """The body of :meth:`Task.retry` (see there)."""
    request = task.request
    retries = request.retries + 1
    if max_retries is not None:
        vars(task)["override_max_retries"] = max_retries  # read by the autoretry wrapper
    limit = task.max_retries if max_retries is None else max_retries
    if request.called_directly:
        # Not in a worker: nothing to re-send, so surface the error itself.
        raise_with_context(exc or Retry("Task can be retried", None))
    if not eta and countdown is None:
        countdown = task.default_retry_delay
    call = RetryCall(
        tuple(request.args or () if args is None else args),
        dict(request.kwargs or {} if kwargs is None else kwargs),
        retry_options(request, countdown=countdown, eta=eta, retries=retries, **options),
    )
    if limit is not None and retries > limit:
        if exc is not None:
            raise_with_context(exc)
        raise_with_context(
            task.MaxRetriesExceededError(
                f"Can't retry {task.name}[{request.id}] args:{call.args} kwargs:{call.kwargs}"
            )
        )
    ret = Retry(exc=exc, when=eta or countdown, is_eager=request.is_eager, sig=call)
    if not request.is_eager:
        ret.state_stored = store_retry_state(task, request, exc if exc is not None else ret)
        try:
            opts = SendOptions.from_kwargs(call.options)
            task.app.send_task(task.name, call.args, call.kwargs, _options=opts, _task=task)
        except Exception as err:  # the broker is gone: Celery rejects rather than loop
            raise Reject(err, requeue=False) from err
    if throw:
        raise ret
    return ret


def retry_options(request: Context, *, queue: str | None = None, **extra: Any) -> dict[str, Any]:
    """Celery's ``signature_from_request`` options: the request's identity, re-sent as is."""
    hard, soft = request.timelimit or (None, None)
    options: dict[str, Any] = {
        "task_id": request.id,
        "root_id": request.root_id,
        "parent_id": request.parent_id,
        "group_id": request.group,
        "group_index": request.group_index,
        "shadow": request.shadow,
        "chord": request.chord,
        "chain": request.chain,
        "link": request.callbacks,
        "link_error": request.errbacks,
        "expires": _datetime(request.expires),
        "soft_time_limit": soft,
        "time_limit": hard,
        "headers": _without_x_death(request.headers),
        "retries": request.retries,
        "reply_to": request.reply_to,
        "replaced_task_nesting": request.replaced_task_nesting,
        "origin": request.origin,
        "ignore_result": request.ignore_result,
    }
    if request.stamped_headers and request.stamps is not None:
        options["stamped_headers"] = request.stamped_headers
        options["stamps"] = dict(request.stamps)
    options.update(extra)
    info = request.delivery_info or {}
    if info.get("priority") is not None:
        options["priority"] = info["priority"]
    if queue:
        options["queue"] = queue
    elif info.get("exchange") == "" and info.get("routing_key"):
        options["queue"] = info["routing_key"]  # it came through the default exchange
    elif info.get("routing_key"):
        options["exchange"] = info.get("exchange")
        options["routing_key"] = info["routing_key"]
    return options


def _datetime(value: Any) -> datetime | None:
    if isinstance(value, str):
        return datetime.fromisoformat(value)
    return value if isinstance(value, datetime) else None


def _without_x_death(headers: Mapping[str, Any] | None) -> dict[str, Any]:
    # RabbitMQ's dead-letter bookkeeping must not travel with the new message (Celery #7256).
    return {k: v for k, v in (headers or {}).items() if k != "x-death"}


# -- autoretry_for -------------------------------------------------------------------------------
def backoff_delay(factor: int, retries: int, maximum: int, full_jitter: bool) -> int:
    """Celery's ``get_exponential_backoff_interval``: ``factor * 2**retries``, capped, jittered."""
    countdown = int(min(maximum, factor * (2**retries)))
    if full_jitter:
        countdown = random.randrange(countdown + 1)
    return max(0, countdown)


def add_autoretry(task: Task[Any, Any]) -> None:
    """Wrap ``task.run`` so exceptions in ``autoretry_for`` call ``task.retry`` (once per task)."""
    autoretry_for = tuple(task.autoretry_for or ())
    if not autoretry_for or "_orig_run" in vars(task):
        return
    dont = tuple(task.dont_autoretry_for or ())
    orig: Callable[..., Any] = task.run

    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return orig(*args, **kwargs)
        except (Ignore, Retry):
            raise
        except dont:
            raise
        except autoretry_for as exc:
            raise _autoretry(task, exc) from None

    async def run_async(*args: Any, **kwargs: Any) -> Any:
        # An async body raises when awaited, not when called: catch there.
        try:
            return await orig(*args, **kwargs)
        except (Ignore, Retry):
            raise
        except dont:
            raise
        except autoretry_for as exc:
            raise _autoretry(task, exc) from None

    vars(task)["_orig_run"] = orig
    wrapper = run_async if is_async_task(task) else run
    task.run = functools.wraps(orig)(wrapper)  # type: ignore[method-assign]


def _autoretry(task: Task[Any, Any], exc: BaseException) -> Retry:
    options = dict(task.retry_kwargs or {})
    if task.retry_backoff:
        options["countdown"] = backoff_delay(
            int(max(1.0, float(task.retry_backoff))),
            task.request.retries,
            int(task.retry_backoff_max),
            bool(task.retry_jitter),
        )
    override = vars(task).get("override_max_retries")
    if override is not None:
        options["max_retries"] = override
    try:
        return task.retry(exc=exc, **options)
    finally:
        vars(task).pop("override_max_retries", None)


__all__ = [
    "RetryCall",
    "add_autoretry",
    "backoff_delay",
    "raise_with_context",
    "retry",
    "retry_options",
]
