"""The fields Celery puts in ``task-sent`` and ``task-received`` events, from a task call.

One field is celeriac's own: a member of a group or chord (the ``group`` header) adds
``group`` (and ``group_index``, when it has one), so a monitor can draw a group sent from a
client, whose members each have their own root, as one workflow. Celery's receivers and
Flower keep unknown fields out of everything they show, and a task outside any group sends
exactly Celery's fields.
"""

from __future__ import annotations

from typing import Any

from celeriac.protocol.message import TaskCall
from celeriac.protocol.saferepr import saferepr


def received_fields(call: TaskCall) -> dict[str, Any]:
    """``task-received``: name, args and kwargs as repr strings, ids, retries, eta, expires."""
    return {**_celery_fields(call), **group_fields(call)}


def group_fields(call: TaskCall) -> dict[str, Any]:
    """celeriac's addition: the group id and index of a group or chord member, else nothing."""
    if call.group_id is None:
        return {}
    fields: dict[str, Any] = {"group": call.group_id}
    if call.group_index is not None:
        fields["group_index"] = call.group_index
    return fields


def _celery_fields(call: TaskCall) -> dict[str, Any]:
    return {
        "uuid": call.id,
        "name": call.shadow or call.name,
        "args": call.argsrepr if call.argsrepr is not None else saferepr(tuple(call.args)),
        "kwargs": call.kwargsrepr if call.kwargsrepr is not None else saferepr(dict(call.kwargs)),
        "root_id": call.root_id,
        "parent_id": call.parent_id,
        "retries": call.retries,
        "eta": call.eta.isoformat() if call.eta is not None else None,
        "expires": call.expires.isoformat() if call.expires is not None else None,
    }


def sent_fields(
    call: TaskCall, *, queue: str | None, exchange: str, routing_key: str
) -> dict[str, Any]:
    """``task-sent`` (the client, with ``task_send_sent_event``): the same and the route."""
    fields = received_fields(call)
    return {
        "uuid": fields["uuid"],
        "root_id": fields["root_id"],
        "parent_id": fields["parent_id"],
        "name": fields["name"],
        "args": fields["args"],
        "kwargs": fields["kwargs"],
        "retries": fields["retries"],
        "eta": fields["eta"],
        "expires": fields["expires"],
        "queue": queue,
        "exchange": exchange,
        "routing_key": routing_key,
        **group_fields(call),
    }


__all__ = ["group_fields", "received_fields", "sent_fields"]
