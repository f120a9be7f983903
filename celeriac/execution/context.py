"""The request a task sees as ``self.request`` (Celery's ``Context``, also in ``app.task``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class Context:
    """The request a task sees as ``self.request`` (Celery's field names)."""

    id: str | None = None
    task: str | None = None
    args: Sequence[Any] | None = None
    kwargs: Mapping[str, Any] | None = None
    retries: int = 0
    hostname: str | None = None
    delivery_info: Mapping[str, Any] | None = None
    is_eager: bool = False
    called_directly: bool = True
    root_id: str | None = None
    parent_id: str | None = None
    group: str | None = None
    group_index: int | None = None
    eta: Any = None
    expires: Any = None
    timelimit: Any = None
    reply_to: str | None = None
    correlation_id: str | None = None
    origin: str | None = None
    headers: Mapping[str, Any] | None = None
    properties: Mapping[str, Any] | None = None
    callbacks: Any = None
    errbacks: Any = None
    chain: Any = None
    chord: Any = None
    ignore_result: bool = False
    shadow: str | None = None
    stamps: Mapping[str, Any] | None = None
    stamped_headers: Any = None
    replaced_task_nesting: int = 0

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)

    @property
    def children(self) -> list[Any]:
        """Results of the tasks and groups this task sent (Celery's trail), stored with its
        result as ``children``; a list of this request's own."""
        value: list[Any] | None = self.__dict__.get("_children")
        if value is None:
            value = self.__dict__["_children"] = []
        return value

    @children.setter
    def children(self, value: list[Any]) -> None:
        self.__dict__["_children"] = list(value)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)

    def update(self, **fields: Any) -> None:
        self.__dict__.update(fields)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def __repr__(self) -> str:
        return f"<Context: {self.__dict__!r}>"


__all__ = ["Context"]
