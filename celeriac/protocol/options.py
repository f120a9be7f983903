"""``SendOptions``: every ``apply_async`` option as one frozen value."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from celeriac.exceptions import ImproperlyConfigured


@dataclass(frozen=True, slots=True)
class SendOptions:
    """Options of one send, built once by ``apply_async`` and passed down unchanged."""

    task_id: str | None = None
    countdown: float | None = None
    eta: datetime | None = None
    expires: float | datetime | None = None
    queue: str | None = None
    exchange: str | None = None
    routing_key: str | None = None
    priority: int | None = None
    serializer: str | None = None
    compression: str | None = None
    headers: Mapping[str, Any] = field(default_factory=dict)
    ignore_result: bool | None = None
    shadow: str | None = None
    time_limit: float | None = None
    soft_time_limit: float | None = None
    retries: int = 0
    root_id: str | None = None
    parent_id: str | None = None
    group_id: str | None = None
    group_index: int | None = None
    reply_to: str | None = None
    link: Any = None
    link_error: Any = None
    chain: Any = None
    chord: Any = None
    stamped_headers: list[str] | None = None
    stamps: Mapping[str, Any] = field(default_factory=dict)
    replaced_task_nesting: int = 0
    delivery_mode: int | None = None
    #: Set by ``Task.retry()``: the re-published message keeps its first sender's origin
    #: (Celery also repeats it in the message properties).
    origin: str | None = None
    #: Record the sent task in the sending task's ``children`` (Celery's trail).
    add_to_parent: bool = True

    @classmethod
    def from_kwargs(cls, options: Mapping[str, Any]) -> SendOptions:
        """Build from ``apply_async`` keyword arguments; unknown ones raise a clear error."""
        if not options:  # delay(): every option at its default (the value is frozen: shared)
            return DEFAULT_OPTIONS
        known = _FIELD_NAMES
        values: dict[str, Any] = {}
        for key, value in options.items():
            key = _ALIASES.get(key, key)
            if key in _IGNORED:
                continue
            if key not in known:
                raise ImproperlyConfigured(
                    f"apply_async() got an unknown option {key!r}; known options: "
                    + ", ".join(sorted(known))
                )
            if value is not None or key in ("ignore_result",):
                values[key] = value
        if "headers" in values and values["headers"] is None:
            values["headers"] = {}
        return cls(**values)


_FIELD_NAMES = frozenset(f.name for f in fields(SendOptions))
#: The options of ``delay()`` (one shared, frozen value: a send may test ``is`` it).
DEFAULT_OPTIONS = SendOptions()
_ALIASES = {"group": "group_id", "taskset_id": "group_id", "chord_body": "chord"}
# Accepted for Celery compatibility; they concern kombu connection handling we do not need.
_IGNORED = frozenset(
    {
        "connection",
        "producer",
        "publisher",
        "retry",
        "retry_policy",
        "declare",
        "mandatory",
        "immediate",
        "exchange_type",
        "chord_size",
        "router",
        "task_type",
        "subtask_type",
        "immutable",
        "result_cls",
    }
)

__all__ = ["DEFAULT_OPTIONS", "SendOptions"]
