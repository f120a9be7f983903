"""The task-received / task-sent fields: Celery's, plus ``group`` for group members only."""

from __future__ import annotations

from celeriac.events.taskinfo import received_fields, sent_fields
from celeriac.protocol.message import TaskCall

CELERY_RECEIVED = {"uuid", "name", "args", "kwargs", "root_id", "parent_id", "retries", "eta",
                   "expires"}  # fmt: skip


def test_a_task_outside_any_group_sends_exactly_celerys_fields() -> None:
    call = TaskCall(name="t.add", id="a", args=(1, 2), root_id="a")
    assert set(received_fields(call)) == CELERY_RECEIVED
    sent = sent_fields(call, queue="celery", exchange="", routing_key="celery")
    assert set(sent) == CELERY_RECEIVED | {"queue", "exchange", "routing_key"}


def test_a_group_member_adds_its_group_and_index_a_chord_body_its_group() -> None:
    member = TaskCall(name="t.add", id="m", root_id="m", group_id="g", group_index=2)
    assert received_fields(member)["group"] == "g"
    assert received_fields(member)["group_index"] == 2
    sent = sent_fields(member, queue="celery", exchange="", routing_key="celery")
    assert (sent["group"], sent["group_index"]) == ("g", 2)
    body = received_fields(TaskCall(name="t.sum", id="b", group_id="g"))
    assert body["group"] == "g" and "group_index" not in body
