"""Unique tasks (beyond Celery): one queued call per key for ``unique_for`` seconds.

``add.apply_async((2, 3), unique_for=60)`` claims a key in the result store before
publishing. If another call already holds the key (and its claim has not expired), nothing
is published and the caller gets that call's ``AsyncResult``. The claim is one atomic
``claim_unique(key, task_id, ttl)`` call of a store with the
:class:`~celeriac.backends.capabilities.UniqueClaims` capability, so concurrent clients on several
machines agree on a single owner. :class:`UniqueTasks` is the send hook that claims; every app
has it (``celeriac.extras`` registers it), and it acts only for calls that ask.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from celeriac.backends.capabilities import UniqueClaims
from celeriac.exceptions import ImproperlyConfigured
from celeriac.execution.hooks import Hook

if TYPE_CHECKING:
    from celeriac.app.base import Celery
    from celeriac.app.task import Task

#: Prefix of the keys in the result store (next to ``celery-task-meta-``).
KEY_PREFIX = "celeriac-unique-"


def unique_key(
    name: str, args: Sequence[Any] | None, kwargs: Mapping[str, Any] | None, key: Any = None
) -> str:
    """The store key: the task name plus ``key``, or a digest of the arguments."""
    if key is None:
        text = json.dumps([list(args or ()), dict(kwargs or {})], sort_keys=True, default=repr)
        key = hashlib.sha256(text.encode()).hexdigest()
    return f"{KEY_PREFIX}{name}-{key}"


def claim(
    app: Celery,
    name: str,
    args: Sequence[Any] | None,
    kwargs: Mapping[str, Any] | None,
    *,
    key: Any,
    seconds: float,
    task_id: str,
) -> str:
    """Claim the unique key for ``task_id``; return the owner's task id (``task_id`` if won)."""
    if seconds is None or float(seconds) <= 0:
        raise ImproperlyConfigured(
            f"unique_for must be a positive number of seconds, not {seconds!r}"
        )
    backend = app.backend
    if not isinstance(backend, UniqueClaims):
        raise ImproperlyConfigured(
            f"Unique tasks need a result backend that can claim keys; "
            f"{type(backend).__name__} cannot (use the Redis, SQLite or memory backend)."
        )
    return backend.claim_unique(unique_key(name, args, kwargs, key), task_id, float(seconds))


class UniqueTasks(Hook):
    """The send hook (:class:`~celeriac.app.hooks.SendHook`): ``unique_for=`` /
    ``unique_key=`` (options of ``apply_async``, or ``unique_for`` on the task) claim the key
    before publishing; the caller gets the owner's id when another call holds it."""

    options: ClassVar[frozenset[str]] = frozenset({"unique_for", "unique_key"})

    def applies(self, task: Task[Any, Any], options: Mapping[str, Any]) -> bool:
        return (
            bool(options.get("unique_for") or task.unique_for)
            or options.get("unique_key") is not None
        )

    def before_send(
        self,
        task: Task[Any, Any],
        args: Sequence[Any] | None,
        kwargs: Mapping[str, Any] | None,
        task_id: str,
        options: Mapping[str, Any],
    ) -> str | None:
        key = options.get("unique_key")
        seconds = options.get("unique_for") or task.unique_for
        owner = claim(
            task.app, task.name, args, kwargs, key=key, seconds=seconds or 0, task_id=task_id
        )
        return None if owner == task_id else owner


__all__ = ["KEY_PREFIX", "UniqueTasks", "claim", "unique_key"]
