"""Task.retry() re-publishes exactly what Celery 5.7 re-published (task_v2_retry_republish)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from celeriac import Celery, signals
from celeriac.app.task import Task
from celeriac.execution.execute import execute
from celeriac.protocol.envelope import from_envelope
from celeriac.protocol.message import Message
from celeriac.protocol.task_v2 import decode

#: Properties the Redis transport adds to the envelope; not the producer's business.
TRANSPORT_PROPERTIES = {"delivery_info", "body_encoding", "delivery_tag"}


def test_retry_message_matches_celery(load_vector: Callable[[str], dict[str, Any]]) -> None:
    vector = load_vector("task_v2_retry_republish")
    first, expected = (from_envelope(m["raw"])[0] for m in vector["messages"])
    app = Celery("tasks", broker="memory://retry-vector", backend="cache+memory://retry-vector")

    @app.task(name="tasks.flaky", bind=True, max_retries=1, default_retry_delay=1)
    def flaky(self: Task[Any, Any]) -> None:
        raise self.retry(exc=KeyError("again"), countdown=1)

    sent: list[Message] = []

    def capture(sender: Any, body: bytes, **kw: Any) -> None:
        sent.append(Message(body, "application/json", "utf-8", kw["headers"], kw["properties"]))

    signals.after_task_publish.connect(capture)
    try:
        start = datetime.now(timezone.utc)
        info = {"exchange": "", "routing_key": "celery", "priority": 0, "redelivered": False}
        call = decode(first, accept=None)
        execute(app, flaky, call, hostname="celery@vm", delivery_info=info,
                properties=first.properties)  # fmt: skip
    finally:
        signals.after_task_publish.disconnect(capture)
    [message] = sent

    assert message.body == expected.body
    # Every header, in Celery's order, with Celery's values; only the ETA depends on the clock.
    got, want = dict(message.headers), dict(expected.headers)
    assert list(got) == list(want)
    eta = datetime.fromisoformat(got.pop("eta"))
    assert start + timedelta(seconds=0.5) < eta < start + timedelta(seconds=3)
    want.pop("eta")
    assert got == want
    assert got["parent_id"] == got["id"] and got["retries"] == 1
    # Properties: same keys in the same order (origin repeated after reply_to), same values.
    want_props = {k: v for k, v in expected.properties.items() if k not in TRANSPORT_PROPERTIES}
    assert list(message.properties) == list(want_props)
    assert dict(message.properties) == want_props
    assert json.loads(message.body) == vector["messages"][1]["body_json"]
