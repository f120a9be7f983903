"""xmap, xstarmap and chunks: the messages are Celery's (compared with real Celery 5.7
building the same canvas), and the builtin tasks run them."""

from __future__ import annotations

import json
from typing import Any

import celery
import celery.canvas
import pytest
from kombu.utils.json import dumps as kombu_dumps

from celeriac import Celery, chunks, group, signature, xmap, xstarmap
from celeriac.canvas.maps import CHUNKS_TASK, MAP_TASK, STARMAP_TASK
from celeriac.protocol import task_v2
from celeriac.protocol.message import TaskCall


@pytest.fixture
def app(memory_app: Celery) -> Celery:
    @memory_app.task(name="tasks.add")
    def add(x: int, y: int) -> int:
        return x + y

    @memory_app.task(name="tasks.inc")
    def inc(x: int) -> int:
        return x + 1

    return memory_app


@pytest.fixture
def reference() -> Any:
    """A real Celery app (not current), to build the same canvas with."""
    return celery.Celery("reference", set_as_current=False)


def sent(app: Celery) -> list[TaskCall]:
    transport = app.connection()
    deliveries = transport.get(["celery"], max_messages=100, timeout=1)
    transport.ack(deliveries)
    transport.close()
    return [task_v2.decode(d.message, accept=None) for d in deliveries]


def as_json(value: Any) -> Any:
    return json.loads(kombu_dumps(value))


def celery_map_kwargs(made: Any) -> Any:
    """What Celery's ``_basemap.apply_async`` sends as kwargs."""
    return as_json({"task": made.kwargs["task"], "it": list(made.kwargs["it"])})


def test_map_and_starmap_send_celerys_message(app: Celery, reference: Any) -> None:
    add, inc = app.tasks["tasks.add"], app.tasks["tasks.inc"]
    inc.map([1, 2, 3]).apply_async()
    add.starmap([(1, 2), (3, 4)]).delay()
    mapped, starred = sent(app)
    assert (mapped.name, mapped.args) == (MAP_TASK, ())
    expected = celery.canvas.xmap(reference.signature("tasks.inc"), [1, 2, 3], app=reference)
    assert as_json(mapped.kwargs) == celery_map_kwargs(expected)
    assert (starred.name, starred.args) == (STARMAP_TASK, ())
    ref = celery.canvas.xstarmap(reference.signature("tasks.add"), [(1, 2), (3, 4)])
    assert as_json(starred.kwargs) == celery_map_kwargs(ref)
    # the dict form is Celery's too: no subtask_type, immutable
    made = xmap(inc.s(), [1])
    assert made["subtask_type"] is None and made["immutable"] is True
    assert list(made) == list(celery.canvas.xmap(reference.signature("tasks.inc"), [1]))


def test_chunks_is_a_group_of_starmaps(app: Celery, reference: Any) -> None:
    add = app.tasks["tasks.add"]
    items = [(i, i) for i in range(5)]
    parts = add.chunks(iter(items), 2)
    assert parts.task == CHUNKS_TASK and parts.kwargs["n"] == 2
    as_group = parts.group()
    assert isinstance(as_group, group) and len(as_group.tasks) == 3
    result = parts()
    calls = sent(app)
    ref = celery.canvas.chunks(reference.signature("tasks.add"), items, 2).group()
    assert [as_json(c.kwargs) for c in calls] == [celery_map_kwargs(t) for t in ref.tasks]
    assert {c.group_id for c in calls} == {result.id}
    assert [c.group_index for c in calls] == [0, 1, 2]


def test_the_builtin_tasks_run_them(app: Celery) -> None:
    add, inc = app.tasks["tasks.add"], app.tasks["tasks.inc"]
    app.conf.task_always_eager = True
    assert inc.map([1, 2, 3]).apply_async().get() == [2, 3, 4]
    assert xstarmap(add.s(), [(1, 2), (3, 4)]).apply().get() == [3, 7]
    assert add.chunks([(i, i) for i in range(5)], 2).apply_async().get() == [[0, 2], [4, 6], [8]]
    # as a message from a Celery client names them: a plain signature of the builtin
    plain = signature(dict(chunks(add.s(), [(1, 1), (2, 2)], 1)), app=app)
    assert type(plain) is type(signature("x")) and plain.task == CHUNKS_TASK
    sent_group = plain.apply_async().get()  # celery.chunks sends the group of starmaps
    assert sent_group.get() == [[2], [4]]


def test_bad_input_says_what_to_write(app: Celery) -> None:
    add = app.tasks["tasks.add"]
    with pytest.raises(ValueError, match="chunk size must be a whole number above 0"):
        add.chunks([(1, 1)], 0)
    with pytest.raises(TypeError, match="items must be a list, tuple or other iterable"):
        add.map(5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="items must be"):
        xmap(add.s(), "abc")
