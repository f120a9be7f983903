"""Every captured Celery task message: parse, decode, re-encode, and compare the bytes."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from celeriac.protocol import jsonx
from celeriac.protocol.compression import decompress
from celeriac.protocol.envelope import dump_envelope, from_envelope
from celeriac.protocol.message import Message, TaskCall
from celeriac.protocol.task_v2 import decode, encode, encode_v1, peek_headers
from tests.vectors import vector_files

SERIALIZER_BY_TYPE = {"application/json": "json", "application/x-python-serialize": "pickle"}
UTC = timezone.utc
LoadVector = Callable[[str], dict[str, Any]]


def vector_messages(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The captured messages of one vector file, whatever its layout."""
    for key in ("messages", "header_messages"):
        if key in data:
            return list(data[key])
    return [data["message"]]


def _cases() -> list[Any]:
    cases = []
    for path in vector_files("task_v*.json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        for index, _ in enumerate(vector_messages(data)):
            cases.append(pytest.param(path, index, id=f"{path.stem}[{index}]"))
    return cases


def _expected_body(captured: dict[str, Any]) -> Any:
    """The body Celery sent, as Python values (markers decoded)."""
    if "body_pickle_hex" in captured:
        return pickle.loads(bytes.fromhex(captured["body_pickle_hex"]))
    return jsonx.loads(json.dumps(captured["body_json"]))


def _check_fields(call: TaskCall, headers: dict[str, Any], body: Any) -> None:
    """The decoded TaskCall holds what the captured headers and body say."""
    if not headers:  # protocol 1: everything lives in the body dict
        headers, args, kwargs = body, body["args"], body["kwargs"]
        embed = {
            "callbacks": body["callbacks"],
            "errbacks": body["errbacks"],
            "chord": body["chord"],
        }
        assert call.group_id == body["taskset"]
    else:
        args, kwargs, embed = body
        assert call.chain == embed["chain"]
        assert call.root_id == headers["root_id"]
        assert call.parent_id == headers["parent_id"]
        assert call.argsrepr == headers["argsrepr"]
        assert call.kwargsrepr == headers["kwargsrepr"]
        assert call.origin == headers["origin"]
        assert call.shadow == headers["shadow"]
        assert call.ignore_result is bool(headers["ignore_result"])
        assert call.group_id == headers["group"]
    assert call.name == headers["task"]
    assert call.id == headers["id"]
    assert call.args == tuple(args)
    assert call.kwargs == kwargs
    assert (call.callbacks, call.errbacks, call.chord) == (
        embed["callbacks"],
        embed["errbacks"],
        embed["chord"],
    )
    assert call.retries == headers["retries"]
    assert call.group_index == headers["group_index"]
    assert list(call.timelimit) == list(headers["timelimit"])
    for field in ("eta", "expires"):
        value = getattr(call, field)
        if headers[field] is None:
            assert value is None
        else:
            assert value == datetime.fromisoformat(headers[field])
            assert value.tzinfo is not None


def _reencode(call: TaskCall, message: Message) -> Message:
    compression = message.headers.get("compression")
    serializer = SERIALIZER_BY_TYPE[message.content_type]
    props = message.properties
    if not message.headers:
        return encode_v1(call, serializer=serializer, compression=compression, properties=props)
    return encode(call, serializer=serializer, compression=compression, properties=props)


@pytest.mark.parametrize(("path", "index"), _cases())
def test_vector_round_trip(path: Path, index: int) -> None:
    captured = vector_messages(json.loads(path.read_text(encoding="utf-8")))[index]
    raw, envelope = captured["raw"], captured["envelope"]
    props = envelope["properties"]

    message, info = from_envelope(raw)
    assert info["exchange"] == props["delivery_info"]["exchange"]
    assert info["routing_key"] == props["delivery_info"]["routing_key"]
    assert info["delivery_tag"] == props["delivery_tag"]
    assert info["redelivered"] is False
    assert message.priority == props["priority"]
    assert dict(message.headers) == envelope["headers"]

    call = decode(message, accept={"json", "pickle"})
    _check_fields(call, envelope["headers"], _expected_body(captured))
    assert peek_headers(message) == (call.name, call.id)

    again = _reencode(call, message)
    assert list(again.headers.items()) == list(envelope["headers"].items())  # order too
    assert (again.content_type, again.content_encoding) == (
        envelope["content-type"],
        envelope["content-encoding"],
    )
    if "compression" in message.headers:
        # zlib output may differ between zlib builds; the payload and the header may not.
        kind = message.headers["compression"]
        assert decompress(again.body, kind) == decompress(message.body, kind)
        again = replace(again, body=message.body)
    assert again.body == message.body
    tag = props["delivery_tag"]
    info_keys = props["delivery_info"]
    dumped = dump_envelope(
        again,
        exchange=info_keys["exchange"],
        routing_key=info_keys["routing_key"],
        delivery_tag=tag,
    )
    assert dumped == raw


@pytest.mark.parametrize(("path", "index"), _cases())
def test_envelope_round_trip_is_byte_exact(path: Path, index: int) -> None:
    raw = vector_messages(json.loads(path.read_text(encoding="utf-8")))[index]["raw"]
    message, info = from_envelope(raw)
    dumped = dump_envelope(
        message,
        exchange=info["exchange"],
        routing_key=info["routing_key"],
        delivery_tag=info["delivery_tag"],
    )
    assert dumped == raw


# -- what specific scenarios must decode to ------------------------------------------------


def _decoded(load_vector: LoadVector, name: str, index: int = 0) -> tuple[TaskCall, Message]:
    message, _ = from_envelope(vector_messages(load_vector(name))[index]["raw"])
    return decode(message, accept={"json", "pickle"}), message


def test_options_vector(load_vector: LoadVector) -> None:
    call, message = _decoded(load_vector, "task_v2_options")
    assert call.eta == datetime(2031, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    assert call.expires == datetime(2031, 1, 3, tzinfo=UTC)
    assert call.timelimit == (60, 50)
    assert call.shadow == "add-shadow-name"
    assert dict(call.extra_headers) == {"x-custom": "v"}
    assert message.priority == 7
    assert message.properties["expiration"] == "129674953063"


def test_send_task_keeps_null_ignore_result(load_vector: LoadVector) -> None:
    call, _ = _decoded(load_vector, "task_v2_send_task_named_queue")
    assert call.ignore_result is False
    assert encode(call).headers["ignore_result"] is None


def test_ignore_result_vector(load_vector: LoadVector) -> None:
    call, _ = _decoded(load_vector, "task_v2_ignore_result")
    assert (call.name, call.args, call.ignore_result) == ("tasks.noresult", (1,), True)


def test_kwargs_only_vector(load_vector: LoadVector) -> None:
    call, _ = _decoded(load_vector, "task_v2_kwargs_only")
    assert call.args == ()
    assert call.kwargs == {"x": 1, "y": 2}


def test_chain_vector_holds_remaining_steps_reversed(load_vector: LoadVector) -> None:
    call, _ = _decoded(load_vector, "task_v2_chain_first")
    assert call.args == (2, 2)
    assert call.chain is not None
    assert [step["args"] for step in call.chain] == [[8], [4]]


def test_link_vector(load_vector: LoadVector) -> None:
    call, _ = _decoded(load_vector, "task_v2_link_errback")
    assert call.callbacks is not None and call.errbacks is not None
    assert [(s["task"], s["args"]) for s in call.callbacks] == [("tasks.add", [10])]
    assert [s["task"] for s in call.errbacks] == ["tasks.echo"]


def test_group_and_chord_vectors(load_vector: LoadVector) -> None:
    group = load_vector("task_v2_group")
    for index in range(3):
        call, _ = _decoded(load_vector, "task_v2_group", index)
        assert (call.group_id, call.group_index, call.args) == (
            group["group_id"],
            index,
            (index,) * 2,
        )
    chord = load_vector("task_v2_chord")
    for index in range(3):
        call, _ = _decoded(load_vector, "task_v2_chord", index)
        assert (call.group_id, call.group_index) == (chord["chord_group_id"], index)
        assert call.chord is not None
        assert call.chord["task"] == "tasks.tsum"
        assert call.chord["options"]["task_id"] == chord["body_task_id"]


def test_retry_republish_vector(load_vector: LoadVector) -> None:
    first, _ = _decoded(load_vector, "task_v2_retry_republish", 0)
    retry, message = _decoded(load_vector, "task_v2_retry_republish", 1)
    assert retry.id == first.id == retry.parent_id == retry.root_id
    assert (first.retries, retry.retries) == (0, 1)
    assert first.eta is None and retry.eta is not None
    assert message.properties["origin"] == first.origin


def test_protocol1_vector(load_vector: LoadVector) -> None:
    call, message = _decoded(load_vector, "task_v1_protocol1")
    assert dict(message.headers) == {}
    assert (call.name, call.args, call.kwargs) == ("tasks.add", (2, 3), {})
    assert call.eta == datetime(2026, 11, 24, 3, 10, 52, 215018, tzinfo=UTC)
    assert call.expires == datetime(2026, 11, 24, 3, 20, 47, 215018, tzinfo=UTC)
    assert call.argsrepr == "[2, 3]"
    assert message.properties["expiration"] == "600000"


def test_pickle_vector_is_refused_by_default(load_vector: LoadVector) -> None:
    from celeriac.exceptions import ContentDisallowed

    message, _ = from_envelope(load_vector("task_v2_pickle")["message"]["raw"])
    with pytest.raises(ContentDisallowed, match="add 'pickle' to accept_content"):
        decode(message, accept={"json"})
    # The name and id are still available for the log line about the rejected message.
    assert peek_headers(message) == ("tasks.add", "390e412f-de6b-4626-8fe9-f28828da24ee")


def test_computed_argsrepr_matches_celery(load_vector: LoadVector) -> None:
    """argsrepr computed by encode (not copied) equals what Celery wrote."""
    for name in ("task_v2_delay", "task_v2_kwargs_only", "task_v2_ignore_result"):
        call, message = _decoded(load_vector, name)
        fresh = encode(replace(call, argsrepr=None, kwargsrepr=None))
        assert fresh.headers["argsrepr"] == message.headers["argsrepr"]
        assert fresh.headers["kwargsrepr"] == message.headers["kwargsrepr"]
