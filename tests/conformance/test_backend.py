"""ResultBackend conformance: every test runs once per result backend.

A new backend joins the suite by appending one ``BackendKind`` to ``BACKEND_KINDS`` in
``backend_kinds.py``.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from celeriac import states
from celeriac.backends.base import ResultBackend
from celeriac.exceptions import (
    ContentDisallowed,
    DecodeError,
    SecurityError,
    TaskRevokedError,
    TimeoutError,
)
from celeriac.result import AsyncResult, GroupResult
from tests.conformance.backend_kinds import BACKEND_KINDS, Store, backend, store

__all__ = ["BACKEND_KINDS", "backend", "store"]  # the fixtures are used by name below


class CustomError(Exception):
    """An exception class of the test module: must come back as itself."""


class Outer:
    class InnerError(Exception):
        """A nested class: its qualname is dotted."""


@dataclass
class Point:
    x: int
    y: int


def _tid() -> str:
    return str(uuid.uuid4())


def _request(**fields: Any) -> SimpleNamespace:
    base: dict[str, Any] = {
        "task": "tasks.add",
        "args": [1, 2],
        "kwargs": {"z": 3},
        "hostname": "w1@host",
        "retries": 2,
        "delivery_info": {"routing_key": "celery"},
    }
    base.update(fields)
    return SimpleNamespace(**base)


# -- states ------------------------------------------------------------------------------


def test_unknown_id_is_pending(backend: ResultBackend) -> None:
    tid = _tid()
    meta = backend.get_task_meta(tid)
    assert meta["status"] == states.PENDING
    assert meta["result"] is None
    assert meta["date_done"] is None
    assert not AsyncResult(tid, backend=backend).ready()
    assert not backend.task_result_exists(tid)


@pytest.mark.parametrize("value", [5, "text", [1, "x", None, True], {"a": {"b": [1.5]}}, None])
def test_success_round_trip(backend: ResultBackend, value: Any) -> None:
    tid = _tid()
    backend.mark_as_done(tid, value)
    meta = backend.get_task_meta(tid)
    assert meta["status"] == states.SUCCESS
    assert meta["result"] == value
    assert meta["task_id"] == tid
    assert isinstance(meta["date_done"], dt.datetime)
    assert meta["date_done"].utcoffset() == dt.timedelta(0)
    result: AsyncResult[Any] = AsyncResult(tid, backend=backend)
    assert result.get(timeout=5) == value
    assert result.successful() and result.ready() and not result.failed()


def test_json_special_types_round_trip(backend: ResultBackend) -> None:
    value = {
        "aware": dt.datetime(2030, 5, 6, 7, 8, 9, 123456, tzinfo=dt.timezone.utc),
        "naive": dt.datetime(2030, 5, 6, 7, 8, 9),
        "date": dt.date(2030, 5, 6),
        "time": dt.time(7, 8, 9),
        "uuid": uuid.UUID("12345678123456781234567812345678"),
        "decimal": Decimal("1.50"),
        "text_bytes": b"plain bytes",
        "binary": b"\xff\xfe\x00binary",
    }
    tid = _tid()
    backend.mark_as_done(tid, value)
    assert backend.get_result(tid) == value


def test_result_is_readable_by_another_client(store: Store) -> None:
    worker, client = store.connect(), store.connect()
    tid = _tid()
    worker.mark_as_done(tid, {"answer": 42})
    assert client.get_result(tid) == {"answer": 42}


# -- failures ----------------------------------------------------------------------------


def test_failure_reraised_as_original_type(backend: ResultBackend) -> None:
    tid = _tid()
    backend.mark_as_failure(tid, ValueError("boom", 42), traceback="Traceback: here\n")
    result: AsyncResult[Any] = AsyncResult(tid, backend=backend)
    with pytest.raises(ValueError) as info:
        result.get(timeout=5)
    assert info.value.args == ("boom", 42)
    assert result.traceback == "Traceback: here\n"
    assert result.failed() and result.ready() and not result.successful()
    assert result.state == states.FAILURE
    value = result.get(propagate=False)
    assert isinstance(value, ValueError)


@pytest.mark.parametrize("exc", [CustomError("mine", 1), Outer.InnerError("nested")])
def test_custom_exception_classes_come_back(backend: ResultBackend, exc: Exception) -> None:
    tid = _tid()
    backend.mark_as_failure(tid, exc)
    decoded = backend.get_result(tid)
    assert type(decoded) is type(exc)
    assert decoded.args == exc.args


def test_unknown_exception_module_gives_named_substitute(backend: ResultBackend) -> None:
    tid = _tid()
    stored = {"exc_type": "FancyError", "exc_message": ["x", 1], "exc_module": "no.such.mod"}
    backend.store_result(tid, stored, states.FAILURE)
    decoded = backend.get_result(tid)
    assert type(decoded).__name__ == "FancyError"
    assert type(decoded).__module__ == "no.such.mod"
    assert isinstance(decoded, Exception)
    assert decoded.args == ("x", 1)
    with pytest.raises(Exception, match="x") as info:
        AsyncResult(tid, backend=backend).get(timeout=5)
    assert type(info.value) is type(decoded)


def test_non_exception_class_is_refused(backend: ResultBackend) -> None:
    tid = _tid()
    payload = {"exc_type": "system", "exc_message": ["echo owned"], "exc_module": "os"}
    backend.store_result(tid, payload, states.FAILURE)
    with pytest.raises(SecurityError, match=r"os\.system"):
        backend.get_task_meta(tid)


def test_revoked(backend: ResultBackend) -> None:
    tid = _tid()
    backend.mark_as_revoked(tid, reason="terminated")
    result: AsyncResult[Any] = AsyncResult(tid, backend=backend)
    assert result.state == states.REVOKED
    assert result.ready()
    with pytest.raises(TaskRevokedError) as info:
        result.get(timeout=5)
    assert info.value.args == ("terminated",)


def test_started_and_retry_are_not_ready(backend: ResultBackend) -> None:
    tid = _tid()
    backend.mark_as_started(tid, pid=123, hostname="w1@host")
    result: AsyncResult[Any] = AsyncResult(tid, backend=backend)
    assert result.state == states.STARTED
    assert result.result == {"pid": 123, "hostname": "w1@host"}
    assert result.date_done is None
    assert not result.ready()
    backend.mark_as_retry(tid, KeyError("again"), traceback="tb")
    assert result.state == states.RETRY
    assert isinstance(result.result, KeyError)
    assert not result.ready()


def test_custom_state_with_meta(backend: ResultBackend) -> None:
    tid = _tid()
    backend.store_result(tid, {"current": 3, "total": 10}, "PROGRESS")
    meta = backend.get_task_meta(tid)
    assert meta["status"] == "PROGRESS"
    assert meta["result"] == {"current": 3, "total": 10}


# -- write guard, forget -----------------------------------------------------------------


def test_success_is_never_overwritten(backend: ResultBackend) -> None:
    tid = _tid()
    backend.mark_as_done(tid, "first")
    backend.mark_as_failure(tid, ValueError("late"))
    backend.mark_as_started(tid, pid=1)
    backend.mark_as_revoked(tid)
    backend.mark_as_done(tid, "second")
    meta = backend.get_task_meta(tid)
    assert (meta["status"], meta["result"]) == (states.SUCCESS, "first")


def test_earlier_states_are_overwritten(backend: ResultBackend) -> None:
    tid = _tid()
    backend.mark_as_started(tid, pid=1)
    backend.mark_as_retry(tid, KeyError("again"))
    backend.mark_as_failure(tid, ValueError("x"))
    backend.mark_as_done(tid, "finally")
    assert backend.get_task_meta(tid)["status"] == states.SUCCESS


def test_forget(backend: ResultBackend) -> None:
    tid = _tid()
    backend.mark_as_done(tid, 1)
    result: AsyncResult[Any] = AsyncResult(tid, backend=backend)
    assert result.exists()
    result.forget()
    assert backend.get_state(tid) == states.PENDING
    assert not result.exists()


# -- waiting -----------------------------------------------------------------------------


def test_wait_for_times_out(backend: ResultBackend) -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"^The operation timed out\.$"):
        backend.wait_for(_tid(), timeout=0.05, interval=0.01)
    assert time.monotonic() - started < 5
    with pytest.raises(TimeoutError):
        AsyncResult(_tid(), backend=backend).get(timeout=0)


def test_wait_for_returns_when_another_thread_stores(store: Store) -> None:
    client, worker = store.connect(), store.connect()
    tid = _tid()
    waiting = threading.Event()

    def produce() -> None:
        waiting.wait(10)
        worker.mark_as_done(tid, "done")

    thread = threading.Thread(target=produce)
    thread.start()
    # A long interval proves the waiter is woken, not lucky in its polling.
    interval = 10.0 if store.kind.wakes_waiters else 0.05
    started = time.monotonic()
    meta = client.wait_for(tid, timeout=30, interval=interval, on_interval=waiting.set)
    elapsed = time.monotonic() - started
    thread.join(10)
    assert meta["result"] == "done"
    assert elapsed < 3.0


def test_get_returns_ready_result_without_waiting(backend: ResultBackend) -> None:
    tid = _tid()
    backend.mark_as_done(tid, [1, 2])
    started = time.monotonic()
    assert AsyncResult(tid, backend=backend).get(timeout=10, interval=10) == [1, 2]
    assert time.monotonic() - started < 3.0


# -- extended fields, children, cleanup --------------------------------------------------


def test_result_extended_fields(store: Store) -> None:
    backend = store.connect(result_extended=True)
    tid = _tid()
    backend.mark_as_done(tid, 3, request=_request())
    result: AsyncResult[Any] = AsyncResult(tid, backend=backend)
    assert result.name == "tasks.add"
    assert list(result.args) == [1, 2]
    assert result.kwargs == {"z": 3}
    assert result.worker == "w1@host"
    assert result.retries == 2
    assert result.queue == "celery"


def test_no_extended_fields_by_default(backend: ResultBackend) -> None:
    tid = _tid()
    backend.mark_as_done(tid, 3, request=_request())
    result: AsyncResult[Any] = AsyncResult(tid, backend=backend)
    assert result.name is None
    assert result.args is None


def test_children_are_result_objects(backend: ResultBackend) -> None:
    tid, child = _tid(), _tid()
    child_result: AsyncResult[Any] = AsyncResult(child, backend=backend)
    backend.mark_as_done(tid, 1, request=_request(children=[child_result]))
    children = AsyncResult(tid, backend=backend).children
    assert children == [child_result]


def test_cleanup_removes_expired(store: Store) -> None:
    backend = store.connect(result_expires=60)
    old, group_id = _tid(), _tid()
    backend.mark_as_done(old, 1)
    GroupResult(group_id, [AsyncResult(old, backend=backend)]).save(backend)
    assert backend.cleanup() == 0
    assert backend.get_state(old) == states.SUCCESS
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=120)
    assert backend.cleanup(now=later) >= 2
    assert backend.get_state(old) == states.PENDING
    assert backend.restore_group(group_id) is None


def test_cleanup_disabled_when_results_never_expire(store: Store) -> None:
    backend = store.connect(result_expires=None)
    tid = _tid()
    backend.mark_as_done(tid, 1)
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=365)
    assert backend.cleanup(now=later) == 0
    assert backend.get_state(tid) == states.SUCCESS


# -- groups ------------------------------------------------------------------------------


def test_group_save_restore_delete(store: Store) -> None:
    worker, client = store.connect(), store.connect()
    group_id, ids = _tid(), [_tid(), _tid()]
    group = GroupResult(group_id, [AsyncResult(i, backend=worker) for i in ids])
    group.save(worker)
    for index, task_id in enumerate(ids):
        worker.mark_as_done(task_id, index * 10)
    restored = GroupResult.restore(group_id, backend=client)
    assert restored is not None
    assert restored.id == group_id
    assert [r.id for r in restored.results] == ids
    assert restored.join(timeout=5) == [0, 10]
    assert restored.ready() and restored.successful()
    assert restored.completed_count() == 2
    restored.delete(client)
    assert client.restore_group(group_id) is None


def test_unknown_group_is_none(backend: ResultBackend) -> None:
    assert backend.restore_group(_tid()) is None


# -- serializers -------------------------------------------------------------------------


def test_pickle_serializer_when_accepted(store: Store) -> None:
    backend = store.connect(result_serializer="pickle", result_accept_content=["pickle"])
    tid, failed = _tid(), _tid()
    backend.mark_as_done(tid, (Point(1, 2), {1, 2}))
    assert backend.get_result(tid) == (Point(1, 2), {1, 2})
    backend.mark_as_failure(failed, CustomError("pickled", 7))
    with pytest.raises(CustomError) as info:
        AsyncResult(failed, backend=backend).get(timeout=5)
    assert info.value.args == ("pickled", 7)


def test_pickle_refused_when_not_accepted(store: Store) -> None:
    writer = store.connect(result_serializer="pickle", result_accept_content=["pickle"])
    reader = store.connect()
    tid = _tid()
    writer.mark_as_done(tid, Point(1, 2))
    with pytest.raises((ContentDisallowed, DecodeError)):
        reader.get_task_meta(tid)


# -- concurrency -------------------------------------------------------------------------


def test_concurrent_writers(store: Store) -> None:
    threads, per_thread = 4, 40
    ids = [[_tid() for _ in range(per_thread)] for _ in range(threads)]
    errors: list[BaseException] = []

    def write(mine: list[str]) -> None:
        backend = store.connect()
        try:
            for n, task_id in enumerate(mine):
                backend.mark_as_started(task_id, pid=n)
                backend.mark_as_done(task_id, n)
        except BaseException as exc:  # reported below; a thread can not fail the test
            errors.append(exc)

    workers = [threading.Thread(target=write, args=(chunk,)) for chunk in ids]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(30)
    assert errors == []
    reader = store.connect()
    for chunk in ids:
        assert [reader.get_result(task_id) for task_id in chunk] == list(range(per_thread))


def test_concurrent_writes_keep_the_first_success(store: Store) -> None:
    tid = _tid()
    store.connect().mark_as_done(tid, "winner")
    barrier = threading.Barrier(4)

    def late_writer(n: int) -> None:
        backend = store.connect()
        barrier.wait(10)
        for _ in range(10):
            backend.mark_as_failure(tid, ValueError(n))
            backend.mark_as_done(tid, f"loser-{n}")

    workers = [threading.Thread(target=late_writer, args=(n,)) for n in range(4)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(30)
    meta = store.connect().get_task_meta(tid)
    assert (meta["status"], meta["result"]) == (states.SUCCESS, "winner")


def test_many_read_together_in_order_and_joined_as_they_finish(store: Store) -> None:
    """``get_task_metas`` / ``iter_ready``: what ``ResultSet.join_native`` stands on."""
    client, worker = store.connect(), store.connect()
    ids = [_tid() for _ in range(4)]
    worker.mark_as_done(ids[2], "two")
    worker.mark_as_failure(ids[0], ValueError("zero"))
    metas = client.get_task_metas(ids)
    assert [m["status"] for m in metas] == [states.FAILURE, "PENDING", states.SUCCESS, "PENDING"]
    assert [m["task_id"] for m in metas] == ids and metas[2]["result"] == "two"
    stored = threading.Event()

    def finish() -> None:
        stored.wait(10)
        worker.mark_as_done(ids[1], "one")
        worker.mark_as_done(ids[3], "three")

    thread = threading.Thread(target=finish)
    thread.start()
    found = list(client.iter_ready(ids, timeout=30, interval=0.05, on_interval=stored.set))
    thread.join(10)
    assert [task_id for task_id, _ in found[:2]] == [ids[0], ids[2]]  # ready first
    assert sorted(task_id for task_id, _ in found) == sorted(ids)
    with pytest.raises(TimeoutError):
        list(client.iter_ready([_tid()], timeout=0.05, interval=0.01))
    group = GroupResult(_tid(), [AsyncResult(t, backend=client) for t in ids[1:]])
    assert group.join_native(timeout=30) == ["one", "two", "three"]
    collected: list[tuple[str, Any]] = []
    group.join_native(timeout=30, callback=lambda tid, value: collected.append((tid, value)))
    assert sorted(collected) == sorted(zip(ids[1:], ["one", "two", "three"], strict=True))
    with pytest.raises(ValueError, match="zero"):
        GroupResult(_tid(), [AsyncResult(t, backend=client) for t in ids]).join_native(timeout=30)
