"""task_v2.encode / decode / peek_headers beyond the captured vectors."""

from __future__ import annotations

import os
import socket
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from celeriac.exceptions import ContentDisallowed, DecodeError
from celeriac.protocol import jsonx
from celeriac.protocol.message import Message, TaskCall
from celeriac.protocol.serialization import dumps
from celeriac.protocol.task_v2 import HEADER_ORDER, decode, encode, encode_v1, peek_headers

UTC = timezone.utc
CALL = TaskCall(name="tasks.add", id="id-1", args=(2, 3), kwargs={"z": 1}, origin="gen1@host")


def _json_message(body: Any, headers: dict[str, Any]) -> Message:
    return Message(
        body=jsonx.dumps(body).encode(),
        content_type="application/json",
        content_encoding="utf-8",
        headers=headers,
    )


def test_encode_writes_celerys_headers_in_order() -> None:
    eta = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    call = replace(CALL, eta=eta, timelimit=(60, 50), extra_headers={"x-custom": "v"})
    message = encode(call, properties={"correlation_id": "id-1", "priority": 0})
    assert list(message.headers) == [*HEADER_ORDER, "x-custom"]
    assert message.headers["eta"] == "2030-01-02T03:04:05+00:00"
    assert message.headers["timelimit"] == [60, 50]
    assert message.headers["root_id"] == "id-1"  # defaults to the task's own id
    assert message.headers["argsrepr"] == "(2, 3)"
    assert message.headers["kwargsrepr"] == "{'z': 1}"
    assert message.properties == {"correlation_id": "id-1", "priority": 0}
    assert message.body == (
        b'[[2, 3], {"z": 1}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]'
    )


def test_origin_defaults_to_celerys_client_nodename() -> None:
    message = encode(replace(CALL, origin=None))
    assert message.headers["origin"] == f"gen{os.getpid()}@{socket.gethostname()}"


def test_compression_header_comes_last() -> None:
    message = encode(replace(CALL, extra_headers={"x": 1}), compression="gzip")
    assert list(message.headers)[-2:] == ["x", "compression"]
    assert message.headers["compression"] == "application/x-gzip"
    assert decode(message, accept=["json"]) == replace(
        CALL, argsrepr="(2, 3)", kwargsrepr="{'z': 1}", root_id="id-1", extra_headers={"x": 1}
    )


@pytest.mark.parametrize("serializer", ["json", "pickle", "msgpack", "yaml"])
def test_round_trip_with_every_serializer(serializer: str) -> None:
    call = replace(
        CALL,
        eta=datetime(2030, 1, 1, tzinfo=UTC),
        expires=datetime(2030, 1, 2, tzinfo=UTC),
        retries=2,
        group_id="g",
        group_index=1,
        parent_id="p",
        root_id="r",
        shadow="s",
        ignore_result=True,
        stamped_headers=["a"],
        stamps={"a": "b"},
        callbacks=[{"task": "t", "args": [], "kwargs": {}, "options": {}}],
        chain=[{"task": "c", "args": [1], "kwargs": {}, "options": {}}],
        argsrepr="(2, 3)",
        kwargsrepr="{'z': 1}",
        extra_headers={"celery_beat_task": True},
    )
    message = encode(call, serializer=serializer)
    assert decode(message, accept=[serializer]) == call


def test_decode_v2_refuses_disallowed_content() -> None:
    message = encode(CALL, serializer="pickle")
    with pytest.raises(ContentDisallowed, match="pickle"):
        decode(message, accept=["json"])


def test_decode_hybrid_message() -> None:
    """v2 headers over a protocol 1 body dict: body fields, headers win."""
    body = {
        "task": "tasks.old",
        "id": "id-9",
        "args": [1],
        "kwargs": {},
        "retries": 3,
        "eta": "2030-01-01T00:00:00",
        "callbacks": [{"task": "cb"}],
        "utc": True,
    }
    call = decode(_json_message(body, {"task": "tasks.add", "x-extra": 1}), accept=None)
    assert (call.name, call.id, call.args, call.retries) == ("tasks.add", "id-9", (1,), 3)
    assert call.eta == datetime(2030, 1, 1, tzinfo=UTC)  # naive -> UTC
    assert call.callbacks == [{"task": "cb"}]
    assert call.extra_headers == {"x-extra": 1}


def test_protocol1_round_trip_keeps_celerys_body_order() -> None:
    call = replace(CALL, eta=datetime(2030, 1, 1, tzinfo=UTC), group_id="g", argsrepr="(2, 3)")
    message = encode_v1(call, properties={"correlation_id": "id-1"})
    assert message.headers == {}
    body = jsonx.loads(message.body)
    assert list(body) == [
        "task",
        "id",
        "args",
        "kwargs",
        "group",
        "group_index",
        "retries",
        "eta",
        "expires",
        "utc",
        "callbacks",
        "errbacks",
        "timelimit",
        "taskset",
        "chord",
    ]
    assert body["taskset"] == "g" and body["utc"] is True
    decoded = decode(message, accept=["json"])
    assert (decoded.name, decoded.id, decoded.args, decoded.eta) == (
        "tasks.add",
        "id-1",
        (2, 3),
        call.eta,
    )


def test_naive_eta_is_utc_and_z_suffix_is_accepted() -> None:
    headers = dict(encode(CALL).headers, eta="2030-01-01T00:00:00", expires="2030-01-02T00:00:00Z")
    call = decode(_json_message([[], {}, None], headers), accept=None)
    assert call.eta == datetime(2030, 1, 1, tzinfo=UTC)
    assert call.expires == datetime(2030, 1, 1, tzinfo=UTC) + timedelta(days=1)


@pytest.mark.parametrize(
    ("headers", "body", "match"),
    [
        ({"task": "tasks.add"}, [[], {}, {}], "'tasks.add' has no task id"),
        ({"task": "", "id": "i"}, [[], {}, {}], "'i' has no task name"),
        ({}, [[], {}, {}], "no 'task' header"),
        ({}, {"id": "i", "args": []}, "has no task name"),
        ({"task": "t", "id": "i"}, {"not": "a v2 body"}, r"must be \[args, kwargs, embed\]"),
        ({"task": "t", "id": "i"}, ["x", {}, {}], "args must be a list"),
        ({"task": "t", "id": "i"}, [[], [], {}], "kwargs must be a mapping"),
        ({"task": "t", "id": "i", "eta": "soon"}, [[], {}, {}], "invalid eta 'soon'"),
        ({"task": "t", "id": "i", "timelimit": 5}, [[], {}, {}], "timelimit"),
        ({"task": "t", "id": "i", "retries": "x"}, [[], {}, {}], "'retries' is not an integer"),
    ],
)
def test_malformed_messages_are_decode_errors(
    headers: dict[str, Any], body: Any, match: str
) -> None:
    with pytest.raises(DecodeError, match=match):
        decode(_json_message(body, headers), accept=["json"])


def test_malformed_json_body() -> None:
    message = Message(b"[[1,", "application/json", "utf-8", headers={"task": "t", "id": "i"})
    with pytest.raises(DecodeError, match="Malformed application/json"):
        decode(message, accept=["json"])


def test_peek_headers() -> None:
    v2 = encode(CALL, serializer="pickle")
    assert peek_headers(v2) == ("tasks.add", "id-1")
    v1 = encode_v1(CALL)
    assert peek_headers(v1) == ("tasks.add", "id-1")
    # A protocol 1 pickle body is never unpickled just to name it; its id is the
    # correlation_id property when the message has one (as Celery's always do).
    assert peek_headers(encode_v1(CALL, serializer="pickle")) == (None, None)
    pickled = encode_v1(CALL, serializer="pickle", properties={"correlation_id": "id-1"})
    assert peek_headers(pickled) == (None, "id-1")
    assert peek_headers(Message(b"{{", "application/json", "utf-8")) == (None, None)


def test_peek_headers_finds_the_id_of_a_message_it_cannot_read() -> None:
    """A bad message is logged with its id: from the ``id`` header when there is no ``task``
    header, else from ``correlation_id``, whatever the body."""
    no_task = Message(b"\xff", "application/json", "utf-8", {"id": "id-2"}, {})
    assert peek_headers(no_task) == (None, "id-2")
    unreadable = Message(b"{{", "application/json", "utf-8", {}, {"correlation_id": "id-3"})
    assert peek_headers(unreadable) == (None, "id-3")
    not_a_mapping = Message(b"[1]", "application/json", "utf-8", {}, {"correlation_id": "id-4"})
    assert peek_headers(not_a_mapping) == (None, "id-4")


def test_pickled_body_is_a_tuple_like_celerys() -> None:
    data, _, _ = dumps(
        ((2, 3), {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}), "pickle"
    )
    assert encode(CALL.__class__(name="t", id="i", args=(2, 3)), serializer="pickle").body == data
