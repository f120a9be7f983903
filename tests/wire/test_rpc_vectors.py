"""rpc:// result messages against Celery's captured bytes (result_rpc_messages.json, §4.3)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from celeriac.app.config import Settings
from celeriac.app.task import Context
from celeriac.backends.rpc import RPCBackend
from celeriac.protocol.message import Message
from tests.vectors import load_vector


def _vectors() -> list[dict[str, Any]]:
    return list(load_vector("result_rpc_messages")["messages"])


class _Recorder(RPCBackend):
    """The rpc backend with its broker replaced by a list of published messages."""

    def __init__(self) -> None:
        super().__init__("rpc://", Settings())
        self.sent: list[tuple[Message, str, str]] = []

        class _Transport:
            def declare_queue(inner, queue: Any) -> None:
                self.declared = queue

            def publish(inner, message: Message, *, exchange: str, routing_key: str) -> None:
                self.sent.append((message, exchange, routing_key))

        self._producer = _Transport()  # type: ignore[assignment]


@pytest.mark.parametrize("index", [0, 1])
def test_reply_matches_celery(index: int) -> None:
    vector = _vectors()[index]
    expected = vector["body_json"]
    envelope = vector["envelope"]
    backend = _Recorder()
    request = Context(
        id=expected["task_id"], reply_to=vector["redis_key"], correlation_id=expected["task_id"]
    )
    if expected["status"] == "SUCCESS":
        backend.mark_as_done(expected["task_id"], expected["result"], request=request)
    else:
        backend.mark_as_failure(
            expected["task_id"], ValueError("rpcboom", 42), expected["traceback"], request=request
        )
    [(message, exchange, routing_key)] = backend.sent
    assert (exchange, routing_key) == ("", vector["redis_key"])
    assert message.content_type == envelope["content-type"]
    assert message.content_encoding == envelope["content-encoding"]
    assert dict(message.headers) == envelope["headers"] == {}
    props = envelope["properties"]
    assert dict(message.properties) == {
        k: props[k] for k in ("correlation_id", "delivery_mode", "priority")
    }
    got = json.loads(message.body)
    assert list(got) == list(expected)  # Celery's field order
    assert {k: v for k, v in got.items() if k != "date_done"} == {
        k: v for k, v in expected.items() if k != "date_done"
    }
    # The reply queue is declared as Celery's client declares it (§3.2).
    assert backend.declared.durable and backend.declared.auto_delete
    assert backend.declared.arguments == {"x-expires": 86_400_000}


def test_client_decodes_celery_replies() -> None:
    backend = RPCBackend("rpc://", Settings())
    for vector in _vectors():
        body = base64.b64decode(vector["envelope"]["body"])
        meta = backend.decode_document(body, "application/json", "utf-8")
        assert meta["status"] == vector["body_json"]["status"]
        if meta["status"] == "FAILURE":
            assert isinstance(meta["result"], ValueError)
            assert meta["result"].args == ("rpcboom", 42)
        else:
            assert meta["result"] == 3
