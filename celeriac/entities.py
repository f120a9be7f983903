"""``Exchange`` and ``Queue``: declarations with kombu's names and arguments."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Exchange:
    """A message exchange (``direct``, ``topic`` or ``fanout``); ``""`` is the default one."""

    name: str = ""
    type: str = "direct"
    durable: bool = True
    auto_delete: bool = False
    arguments: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Queue:
    """A named queue bound to an exchange with a routing key."""

    name: str
    exchange: Exchange | None = None
    routing_key: str | None = None
    durable: bool = True
    exclusive: bool = False
    auto_delete: bool = False
    queue_arguments: Mapping[str, Any] = field(default_factory=dict)
    max_priority: int | None = None

    def __post_init__(self) -> None:
        if self.exchange is None:
            object.__setattr__(self, "exchange", Exchange(self.name))
        if self.routing_key is None:
            object.__setattr__(self, "routing_key", self.name)

    @property
    def key(self) -> str:
        """The routing key as a plain string."""
        return self.routing_key or ""


__all__ = ["Exchange", "Queue"]
