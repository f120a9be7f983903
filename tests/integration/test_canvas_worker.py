"""The canvas through a real in-thread worker, on every broker: chain, link, errbacks, group,
chord (the result store counts the header: SQLite, Redis, memory), nesting, failures and
``Task.replace``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from celeriac import Celery, chain, chord, group, states
from celeriac.exceptions import ChordError
from celeriac.result import AsyncResult, GroupResult
from celeriac.worker.worker import Worker
from tests.integration.broker_envs import ALL
from tests.integration.conftest import wait_until

pytestmark = pytest.mark.parametrize("broker", ALL, indirect=True)


class Tasks:
    def __init__(self, app: Celery) -> None:
        self.seen: list[Any] = []
        seen = self.seen

        @app.task(name="t.add")
        def add(x: int, y: int) -> int:
            return x + y

        @app.task(name="t.mul")
        def mul(x: int, y: int) -> int:
            return x * y

        @app.task(name="t.tsum")
        def tsum(values: list[int]) -> int:
            return sum(values)

        @app.task(name="t.fail")
        def fail(*args: Any) -> None:
            raise ValueError("boom")

        @app.task(name="t.record")
        def record(value: Any) -> Any:
            seen.append(("record", value))
            return value

        @app.task(name="t.on_error")
        def on_error(request: Any, exc: BaseException, traceback: Any) -> None:
            seen.append(("new-style", request.id, repr(exc)))

        @app.task(name="t.on_error_old")
        def on_error_old(task_id: str) -> None:
            seen.append(("old-style", task_id))

        @app.task(name="t.waits")
        def waits(allow: bool) -> Any:
            inner = add.delay(1, 1)
            if allow:
                return inner.get(timeout=20, disable_sync_subtasks=False)
            try:
                inner.get(timeout=20)
            except RuntimeError as exc:
                return str(exc)
            return "did not refuse"

        @app.task(name="t.nesting", bind=True)
        def nesting(self: Any) -> int:
            return int(self.request.replaced_task_nesting)

        @app.task(name="t.replacer", bind=True)
        def replacer(self: Any, how: str, x: int) -> Any:
            if how == "task":
                return self.replace(add.s(x, 1))
            if how == "chain":
                return self.replace(add.s(x, 1) | mul.s(2))
            if how == "group":
                return self.replace(group(add.s(x, i) for i in range(3)))
            return self.replace(nesting.s())

        @app.task(name="t.spawner")
        def spawner(x: int) -> int:
            add.delay(x, 1)
            group(add.s(x, i) for i in range(2)).delay()
            return x

        @app.task(name="t.grower", bind=True)
        def grower(self: Any, x: int) -> int:
            self.add_to_chord(add.si(x, x))
            return x

        self.add, self.mul, self.tsum, self.fail, self.waits = add, mul, tsum, fail, waits
        self.grower = grower
        self.spawner = spawner
        self.replacer = replacer
        self.record, self.on_error, self.on_error_old = record, on_error, on_error_old


@pytest.fixture
def tasks(app: Celery) -> Iterator[Tasks]:
    registered = Tasks(app)
    w = Worker(
        app, pool="threads", concurrency=3, install_signal_handlers=False, without_banner=True
    )
    thread = threading.Thread(target=w.start, daemon=True)
    thread.start()
    yield registered
    w.stop()
    thread.join(30)
    assert not thread.is_alive()


def test_chain_passes_each_result_on(app: Celery, tasks: Tasks) -> None:
    result = (tasks.add.s(1, 2) | tasks.add.s(3) | tasks.mul.s(10)).apply_async()
    assert result.get(timeout=30) == 60
    assert result.parent.get(timeout=30) == 6 and result.parent.parent.get(timeout=30) == 3
    immutable = chain(tasks.add.s(1, 1), tasks.add.si(5, 5), tasks.add.s(1)).apply_async()
    assert immutable.get(timeout=30) == 11
    nested = chain(tasks.add.s(1, 1), chain(tasks.add.s(1), tasks.add.s(1))).delay()
    assert nested.get(timeout=30) == 4


def test_link_callbacks_get_the_result(app: Celery, tasks: Tasks) -> None:
    result = tasks.add.apply_async((2, 3), link=[tasks.record.s(), tasks.record.si("fixed")])
    assert result.get(timeout=30) == 5
    wait_until(lambda: len(tasks.seen) == 2, "both callbacks")
    assert sorted(tasks.seen, key=repr) == [("record", "fixed"), ("record", 5)]


def test_errbacks_new_and_old_style_and_the_chain_fails(app: Celery, tasks: Tasks) -> None:
    failing = tasks.fail.s().on_error(tasks.on_error.s()).on_error(tasks.on_error_old.s())
    result = (failing | tasks.add.s(1)).apply_async()
    with pytest.raises(ValueError, match="boom"):
        result.get(timeout=30)
    wait_until(lambda: result.state == states.FAILURE, "the pending step to be marked FAILURE")
    first_id = result.parent.id
    wait_until(lambda: len(tasks.seen) == 2, "both errbacks")
    assert ("new-style", first_id, "ValueError('boom')") in tasks.seen
    assert ("old-style", first_id) in tasks.seen


def test_group_results_together_saved_and_restored(app: Celery, tasks: Tasks) -> None:
    result = group(tasks.add.s(i, i) for i in range(5)).apply_async()
    assert result.get(timeout=30) == [0, 2, 4, 6, 8]
    assert result.ready() and result.successful() and result.completed_count() == 5
    result.save()
    restored = GroupResult.restore(result.id, app=app)
    assert restored is not None and [r.id for r in restored] == [r.id for r in result]
    assert restored.join(timeout=30) == [0, 2, 4, 6, 8]
    partial = group(tasks.add.s(1), tasks.mul.s(3)).apply_async((10,))
    assert partial.get(timeout=30) == [11, 30]


def test_chord_joins_in_the_store(app: Celery, tasks: Tasks) -> None:
    result = chord(tasks.add.s(i, i) for i in range(10))(tasks.tsum.s())
    assert result.get(timeout=30) == 90
    assert isinstance(result.parent, GroupResult) and result.parent.get(timeout=30)[-1] == 18
    upgraded = (group(tasks.add.s(i, 1) for i in range(3)) | tasks.tsum.s()).delay()
    assert upgraded.get(timeout=30) == 6
    body_chain = chord([tasks.add.s(1, 1), tasks.add.s(2, 2)], tasks.tsum.s() | tasks.mul.s(10))
    assert body_chain.delay().get(timeout=30) == 60
    in_chain = (tasks.add.s(1, 1) | group(tasks.add.s(1), tasks.mul.s(3)) | tasks.tsum.s()).delay()
    assert in_chain.get(timeout=30) == 9


def test_a_failing_header_task_fails_the_body_with_chord_error(app: Celery, tasks: Tasks) -> None:
    body = tasks.tsum.s().on_error(tasks.on_error.s())
    result = chord([tasks.add.s(1, 1), tasks.fail.s()], body).apply_async()
    wait_until(lambda: result.state == states.FAILURE, "the body to fail")
    with pytest.raises(ChordError, match="boom"):  # (following parents: the header's error)
        result.get(timeout=30, follow_parents=False)
    wait_until(lambda: tasks.seen, "the body's errback")
    assert tasks.seen[0][:2] == ("new-style", result.id)


def test_get_inside_a_task_refuses_unless_allowed(app: Celery, tasks: Tasks) -> None:
    assert "Never call result.get() within a task" in tasks.waits.delay(False).get(timeout=30)
    assert tasks.waits.delay(True).get(timeout=30) == 2


def test_replace_keeps_the_id_the_chain_and_the_chord(app: Celery, tasks: Tasks) -> None:
    replacer = tasks.replacer
    result = replacer.delay("task", 4)
    assert result.get(timeout=30) == 5  # the replacement ran under the task's id
    assert replacer.delay("chain", 4).get(timeout=30) == 10
    assert replacer.delay("group", 4).get(timeout=30) == [4, 5, 6]  # celery.accumulate
    assert replacer.delay("nesting", 0).get(timeout=30) == 1  # replaced_task_nesting
    # in a chain: the rest of the chain runs after the replacement
    chained = (replacer.s("task", 1) | tasks.mul.s(10)).delay()
    assert chained.get(timeout=30) == 20
    # in a chord's header: the replacement reports the part
    joined = chord([replacer.s("task", 1), tasks.add.s(1, 1)], tasks.tsum.s()).delay()
    assert joined.get(timeout=30) == 4
    # with link callbacks: they get the replacement's value
    linked = replacer.apply_async(("task", 7), link=tasks.record.s())
    assert linked.get(timeout=30) == 8
    wait_until(lambda: ("record", 8) in tasks.seen, "the callback of the replaced task")


def test_children_are_stored_and_collected(app: Celery, tasks: Tasks) -> None:
    result = tasks.spawner.delay(5)
    assert result.get(timeout=30) == 5
    sent, fanned = result.children
    assert isinstance(sent, AsyncResult) and not isinstance(sent, GroupResult)
    assert isinstance(fanned, GroupResult) and len(fanned.results) == 2
    assert sent.get(timeout=30) == 6 and fanned.get(timeout=30) == [5, 6]
    # the graph, breadth first: the task, what it sent, what the group holds
    assert [value for _, value in result.collect(timeout=30)] == [5, 6, [5, 6], 5, 6]


def test_add_to_chord_makes_the_body_wait_for_the_added_task(app: Celery, tasks: Tasks) -> None:
    result = chord([tasks.grower.s(10), tasks.add.s(1, 1)], tasks.tsum.s()).delay()
    assert result.get(timeout=30) == 10 + 20 + 2
    with pytest.raises(ValueError, match="not member of any chord"):
        tasks.grower.delay(1).get(timeout=30)
