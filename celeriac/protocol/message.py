"""The values that travel between producer, transport and worker."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Message:
    """One broker message, transport-neutral (kombu's Message without the channel).

    ``body`` holds the serialized (and possibly compressed) bytes; ``content_type`` and
    ``content_encoding`` describe the *uncompressed* payload and ``headers["compression"]``
    names the compression, exactly as kombu does. ``properties`` carries
    ``correlation_id``, ``reply_to``, ``delivery_mode``, ``priority`` and optionally
    ``expiration`` (milliseconds as a string).
    """

    body: bytes
    content_type: str
    content_encoding: str
    headers: Mapping[str, Any] = field(default_factory=dict)
    properties: Mapping[str, Any] = field(default_factory=dict)

    @property
    def priority(self) -> int:
        value = self.properties.get("priority")
        return value if isinstance(value, int) else 0


@dataclass(slots=True)
class TaskCall:
    """One task invocation in decoded form: protocol 2's headers and body as values.

    This is what a producer encodes and what a worker decodes (protocol 1 messages
    decode to the same value). Treat it as immutable (``dataclasses.replace`` makes a
    changed copy); it is not frozen only because a frozen class builds its 25 fields at
    four times the cost, and one is built for every ``delay()``. ``extra_headers`` holds user
    headers merged at the top level of the header mapping and any header this class has no
    field for.
    """

    name: str
    id: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    eta: datetime | None = None
    expires: datetime | None = None
    retries: int = 0
    root_id: str | None = None
    parent_id: str | None = None
    group_id: str | None = None
    group_index: int | None = None
    shadow: str | None = None
    timelimit: tuple[float | None, float | None] = (None, None)
    ignore_result: bool = False
    origin: str | None = None
    argsrepr: str | None = None
    kwargsrepr: str | None = None
    replaced_task_nesting: int = 0
    stamped_headers: list[str] | None = None
    stamps: Mapping[str, Any] = field(default_factory=dict)
    callbacks: list[dict[str, Any]] | None = None
    errbacks: list[dict[str, Any]] | None = None
    chain: list[dict[str, Any]] | None = None
    chord: dict[str, Any] | None = None
    extra_headers: Mapping[str, Any] = field(default_factory=dict)


__all__ = ["Message", "TaskCall"]
