"""The kombu virtual-transport envelope beyond the captured vectors."""

from __future__ import annotations

import json

import pytest

from celeriac.exceptions import DecodeError, EncodeError
from celeriac.protocol.envelope import dump_envelope, from_envelope, to_envelope
from celeriac.protocol.message import Message

MESSAGE = Message(
    body=b"[[1], {}, {}]",
    content_type="application/json",
    content_encoding="utf-8",
    headers={"task": "t", "id": "i"},
    properties={
        "correlation_id": "i",
        "reply_to": "r",
        "delivery_mode": 2,
        "priority": 3,
        "expiration": "1000",
    },
)


def test_transport_properties_follow_the_messages_own() -> None:
    env = to_envelope(MESSAGE, exchange="", routing_key="celery", delivery_tag="tag")
    assert list(env) == ["body", "content-encoding", "content-type", "headers", "properties"]
    assert list(env["properties"]) == [
        "correlation_id",
        "reply_to",
        "delivery_mode",
        "expiration",
        "delivery_info",
        "priority",
        "body_encoding",
        "delivery_tag",
    ]
    assert env["properties"]["priority"] == 3
    assert env["body"] == "W1sxXSwge30sIHt9XQ=="


def test_round_trip_and_delivery_info() -> None:
    raw = dump_envelope(MESSAGE, exchange="ex", routing_key="rk", delivery_tag="tag")
    message, info = from_envelope(raw)
    assert message == MESSAGE
    assert info == {
        "exchange": "ex",
        "routing_key": "rk",
        "priority": 3,
        "redelivered": False,
        "delivery_tag": "tag",
    }
    assert from_envelope(raw.encode())[0] == MESSAGE
    assert from_envelope(json.loads(raw))[0] == MESSAGE


def test_redelivered_is_marked_in_delivery_info() -> None:
    raw = dump_envelope(MESSAGE, exchange="", routing_key="q", delivery_tag="t", redelivered=True)
    assert json.loads(raw)["properties"]["delivery_info"] == {
        "exchange": "",
        "routing_key": "q",
        "redelivered": True,
    }
    assert from_envelope(raw)[1]["redelivered"] is True


def test_plain_body_encoding() -> None:
    raw = dump_envelope(MESSAGE, exchange="", routing_key="q", delivery_tag="t", body_encoding=None)
    envelope = json.loads(raw)
    assert envelope["body"] == "[[1], {}, {}]"
    assert envelope["properties"]["body_encoding"] is None
    assert from_envelope(raw)[0].body == MESSAGE.body
    binary = Message(b"\xff", "application/x-python-serialize", "binary")
    with pytest.raises(EncodeError, match="base64"):
        to_envelope(binary, exchange="", routing_key="q", delivery_tag="t", body_encoding="utf-8")


def test_missing_priority_is_written_as_zero() -> None:
    env = to_envelope(
        Message(b"x", "text/plain", "utf-8"), exchange="", routing_key="q", delivery_tag="t"
    )
    assert env["properties"]["priority"] == 0


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ("{not json", "Malformed message envelope"),
        ("[1, 2]", "must be a JSON object"),
        ('{"body": "abc", "properties": {"body_encoding": "base64"}}', "not valid base64"),
        ('{"body": "x", "properties": {"body_encoding": "rot13"}}', "unknown body_encoding"),
    ],
)
def test_malformed_envelopes(raw: str, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        from_envelope(raw)
