"""The shared slot a consuming prefork child writes and its parent reads (same process here:
the mapping behaves the same on both sides of a fork)."""

from __future__ import annotations

from celeriac.worker.pools.prefork.messages import HeldMessage, SlotJob
from celeriac.worker.pools.prefork.slot import BATCH_MAX, Slot


def _payload(tag: str, body: bytes = b"[]") -> SlotJob:
    return SlotJob(
        body, "application/json", "utf-8", {"id": tag}, {}, "celery", "", "celery", tag, False
    )


def test_an_idle_slot_reports_nothing() -> None:
    slot = Slot()
    assert slot.running() is None
    remains = slot.remains()
    assert (remains.running, remains.unstarted, remains.held) == (None, [], [])
    assert remains.complete


def test_running_job_limit_unstarted_and_held_are_read_back() -> None:
    slot = Slot()
    batch = [_payload("a"), _payload("b"), _payload("c")]
    slot.set_batch(batch, [HeldMessage("celery", "", "celery", "z")])
    slot.start(0, "id-a", 10.0)
    slot.start(1, "id-b", 11.0)
    slot.set_limit(2.5)
    running = slot.running()
    assert running is not None
    assert (running.task_id, running.started, running.hard_limit) == ("id-b", 11.0, 2.5)
    remains = slot.remains()
    assert remains.running == batch[1] and remains.running_id == "id-b"
    assert remains.unstarted == [batch[2]]
    assert remains.held == [HeldMessage("celery", "", "celery", "z")]
    assert remains.held[0].delivery_tag == "z"
    assert remains.unstarted[0].delivery_tag == "c"


def test_a_finished_batch_leaves_nothing_to_redo() -> None:
    slot = Slot()
    slot.set_batch([_payload("a"), _payload("b")], [])
    slot.start(0, "id-a", 1.0)
    slot.start(1, "id-b", 2.0)
    slot.done(2)
    assert slot.running() is None
    remains = slot.remains()
    assert (remains.running, remains.running_id, remains.unstarted) == (None, None, [])


def test_a_batch_too_large_to_copy_keeps_the_running_id() -> None:
    slot = Slot()
    slot.set_batch([_payload("big", b"x" * (BATCH_MAX + 1))], [])
    slot.start(0, "id-big", 1.0)
    remains = slot.remains()
    assert not remains.complete
    assert (remains.running, remains.running_id) == (None, "id-big")
