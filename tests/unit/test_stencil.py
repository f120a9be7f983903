"""The stencil's envelope text is the general path's, byte for byte (task_v2.encode, then
dump_envelope), for any JSON arguments, task name, ids and parent."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from celeriac.protocol import task_v2
from celeriac.protocol.envelope import dump_envelope
from celeriac.protocol.message import TaskCall
from celeriac.protocol.saferepr import saferepr
from celeriac.protocol.stencil import Stencil

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
ids = st.uuids().map(str) | st.text(min_size=1, max_size=40)


def general(call: TaskCall, properties: dict[str, Any], exchange: str, key: str, tag: str) -> str:
    message = task_v2.encode(call, serializer="json", properties=properties)
    return dump_envelope(message, exchange=exchange, routing_key=key, delivery_tag=tag)


@settings(max_examples=300, deadline=None)
@given(
    name=st.text(min_size=1, max_size=30),
    args=st.lists(values, max_size=5),
    as_list=st.booleans(),
    kwargs=st.dictionaries(st.text(max_size=10), values, max_size=4),
    task_id=ids,
    parent=st.none() | ids,
    root=st.none() | ids,
    tag=ids,
    origin=st.text(min_size=1, max_size=30),
    reply_to=ids,
    priority=st.integers(0, 9),
    key=st.text(max_size=20),
)
def test_the_stencil_writes_the_general_paths_bytes(
    name: str,
    args: list[Any],
    as_list: bool,
    kwargs: dict[str, Any],
    task_id: str,
    parent: str | None,
    root: str | None,
    tag: str,
    origin: str,
    reply_to: str,
    priority: int,
    key: str,
) -> None:
    properties = {
        "correlation_id": task_id,
        "reply_to": reply_to,
        "delivery_mode": 2,
        "priority": priority,
    }
    given_args: tuple[Any, ...] | list[Any] = list(args) if as_list else tuple(args)
    call = TaskCall(
        name=name,
        id=task_id,
        args=tuple(args),
        kwargs=kwargs,
        root_id=root or task_id,
        parent_id=parent,
        origin=origin,
        argsrepr=saferepr(given_args, task_v2.REPR_MAXSIZE) if as_list else None,
    )
    stencil = Stencil.cut(name, origin, properties, "", key)
    filled = stencil.fill(task_id, root or task_id, parent, given_args, kwargs, tag)
    assert filled == general(call, properties, "", key, tag)
