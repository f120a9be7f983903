"""kombu's JSON markers, checked against the body Celery wrote for echo(<special types>)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import date, datetime, time, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

from celeriac.protocol import jsonx, serialization
from celeriac.protocol.envelope import from_envelope
from celeriac.protocol.message import TaskCall
from celeriac.protocol.task_v2 import decode, encode

LoadVector = Callable[[str], dict[str, Any]]
UTC = timezone.utc

#: The producer's values (vector task_v2_json_special_types.json, "producer_code").
ARGS = (
    datetime(2030, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
    datetime(2030, 5, 6, 7, 8, 9),
    date(2030, 5, 6),
    time(7, 8, 9),
    UUID("12345678-1234-5678-1234-567812345678"),
    b"plain bytes",
    b"\xff\xfe\x00binary",
    Decimal("1.50"),
    (1, 2),
    {"nested": [1, "x", None, True]},
)
KWARGS = {"when": datetime(2030, 1, 1, tzinfo=UTC)}


def _captured(load_vector: LoadVector) -> dict[str, Any]:
    message: dict[str, Any] = load_vector("task_v2_json_special_types")["message"]
    return message


def test_encoding_the_producer_values_gives_celerys_bytes(load_vector: LoadVector) -> None:
    captured = _captured(load_vector)
    body = base64.b64decode(captured["envelope"]["body"])
    call = TaskCall(name="tasks.echo", id="x", args=ARGS, kwargs=KWARGS, origin="o")
    message = encode(call)
    assert message.body == body
    # argsrepr computed by encode equals Celery's saferepr output (hex for binary bytes).
    assert message.headers["argsrepr"] == captured["envelope"]["headers"]["argsrepr"]
    assert message.headers["kwargsrepr"] == captured["envelope"]["headers"]["kwargsrepr"]


def test_decoding_celerys_bytes_gives_the_values_back(load_vector: LoadVector) -> None:
    message, _ = from_envelope(_captured(load_vector)["raw"])
    call = decode(message, accept=["json"])
    expected = list(ARGS)
    expected[8] = [1, 2]  # JSON has no tuples
    assert list(call.args) == expected
    assert call.kwargs == KWARGS
    assert call.args[0].tzinfo is not None and call.args[1].tzinfo is None


def test_markers_are_exactly_kombus(load_vector: LoadVector) -> None:
    body_json = _captured(load_vector)["body_json"]
    assert json.loads(jsonx.dumps(list(ARGS))) == body_json[0]
    data, content_type, encoding = serialization.dumps({"when": KWARGS["when"]}, "json")
    assert (content_type, encoding) == ("application/json", "utf-8")
    assert json.loads(data) == body_json[1]
