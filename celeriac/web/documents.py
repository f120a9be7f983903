"""The task document of Flower's API (``/api/tasks``, ``/api/task/info/<id>``).

One flat dict per task with Flower 2.2's keys: the fields of the task events, ``worker`` and
``client`` as host names, ``parent`` / ``root`` as ids, ``children`` as ids. A member of a
group or chord sent by a celeriac worker or client also has ``group`` (and ``group_index``),
which the workflow view uses; :func:`flower_document` drops them for the API.
"""

from __future__ import annotations

from typing import Any

from celeriac.events.state import Task

#: Flower 2.2's keys, in its order (sorted).
TASK_FIELDS = (
    "args",
    "children",
    "client",
    "clock",
    "eta",
    "exception",
    "exchange",
    "expires",
    "failed",
    "kwargs",
    "name",
    "parent",
    "parent_id",
    "received",
    "rejected",
    "result",
    "retried",
    "retries",
    "revoked",
    "root",
    "root_id",
    "routing_key",
    "runtime",
    "sent",
    "started",
    "state",
    "succeeded",
    "timestamp",
    "traceback",
    "uuid",
    "worker",
)
#: celeriac's fields of group and chord members (not in Flower's documents).
GROUP_FIELDS = ("group", "group_index")
#: Fields copied as they are from the cluster model's task.
_PLAIN = tuple(
    f for f in TASK_FIELDS if f not in ("children", "client", "parent", "root", "worker")
)


def task_document(task: Task) -> dict[str, Any]:
    """The Flower document of ``task`` (``children`` empty: the store fills it in)."""
    attrs = vars(task)
    doc: dict[str, Any] = {name: attrs.get(name) for name in _PLAIN}
    doc["worker"] = task.worker.hostname if task.worker is not None else None
    doc["client"] = attrs.get("client")
    doc["parent"] = task.parent_id
    doc["root"] = task.root_id or task.uuid
    doc["root_id"] = task.root_id or task.uuid
    doc["children"] = []
    doc["exchange"] = doc["exchange"] if doc["exchange"] is not None else ""
    for name in GROUP_FIELDS:
        if attrs.get(name) is not None:
            doc[name] = attrs[name]
    return doc


def flower_document(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with Flower's keys only (what ``/api/tasks`` and ``/api/task/info`` answer)."""
    return {k: v for k, v in doc.items() if k not in GROUP_FIELDS}


def restore(task: Task, doc: dict[str, Any]) -> None:
    """Fill ``task`` (new in the cluster model) from its stored document, so that events
    after a monitor restart add to what was known rather than start afresh."""
    attrs = vars(task)
    for name in _PLAIN:
        if name != "uuid" and doc.get(name) is not None:
            attrs[name] = doc[name]
    for name in ("client", *GROUP_FIELDS):
        if doc.get(name) is not None:
            attrs[name] = doc[name]


__all__ = ["GROUP_FIELDS", "TASK_FIELDS", "flower_document", "restore", "task_document"]
