"""Signatures and the messages chain / group / chord publish, against Celery's captured bytes."""

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest

from celeriac import Celery, chain, chord, group, maybe_signature, signature
from celeriac.canvas import Signature
from celeriac.exceptions import ImproperlyConfigured
from celeriac.protocol import task_v2
from celeriac.protocol.message import TaskCall
from celeriac.result import AsyncResult, GroupResult
from tests.vectors import load_vector


@pytest.fixture
def app(memory_app: Celery) -> Celery:
    @memory_app.task(name="tasks.add")
    def add(x: int, y: int) -> int:
        return x + y

    @memory_app.task(name="tasks.tsum")
    def tsum(values: list[int]) -> int:
        return sum(values)

    return memory_app


def sent(app: Celery) -> list[tuple[TaskCall, Any]]:
    transport = app.connection()
    deliveries = transport.get(["celery"], max_messages=100, timeout=1)
    transport.ack(deliveries)
    transport.close()
    return [(task_v2.decode(d.message, accept=None), d.message) for d in deliveries]


def body_of(message: Any) -> Any:
    return json.loads(message.body)


# -- signatures ----------------------------------------------------------------------------


def test_a_signature_is_celerys_dict(app: Celery) -> None:
    add = app.tasks["tasks.add"]
    sig = add.s(2).set(countdown=5, queue="q1")
    assert dict(sig) == {
        "task": "tasks.add",
        "args": (2,),
        "kwargs": {},
        "options": {"countdown": 5, "queue": "q1"},
        "subtask_type": None,
        "immutable": False,
    }
    assert isinstance(sig, Signature) and sig.name == "tasks.add" and sig.type is add
    assert repr(sig) == "tasks.add(2)"
    assert add.si(1, 2).immutable and add.signature((1,), {"y": 2}).kwargs == {"y": 2}
    assert app.signature("tasks.add", args=(1, 2)).app is app


def test_clone_prepends_partial_args_and_merges_kwargs_unless_immutable(app: Celery) -> None:
    add = app.tasks["tasks.add"]
    sig = add.s(2, z=1)
    clone = sig.clone((1,), {"w": 2}, queue="x")
    assert clone.args == (1, 2) and clone.kwargs == {"z": 1, "w": 2}
    assert clone.options == {"queue": "x"} and sig.options == {}  # the original is unchanged
    frozen = add.si(2, 2).clone((9,), {"w": 1})
    assert frozen.args == (2, 2) and frozen.kwargs == {}
    assert sig.clone(group_id="a").clone(group_id="b").options["group_id"] == "a"


def test_signature_round_trips_through_json_and_pickle(app: Celery) -> None:
    add = app.tasks["tasks.add"]
    sig = add.s(1).on_error(add.si(0, 0))
    sig.link(add.s(5))
    back = signature(json.loads(json.dumps(sig)), app=app)
    assert isinstance(back, Signature) and back == json.loads(json.dumps(sig))
    assert back.options["link"][0]["task"] == "tasks.add"
    assert pickle.loads(pickle.dumps(sig)) == sig
    nested = chord([add.s(1, 1), add.s(2, 2)], chain(add.s(1), add.s(2)))
    restored = maybe_signature(json.loads(json.dumps(nested)), app=app)
    assert isinstance(restored, chord)
    assert [t.args for t in restored.tasks] == [(1, 1), (2, 2)]
    assert isinstance(restored.body, chain) and len(restored.body.tasks) == 2
    assert maybe_signature(None) is None


def test_or_builds_chains_and_upgrades_group_to_chord(app: Celery) -> None:
    add = app.tasks["tasks.add"]
    tsum = app.tasks["tasks.tsum"]
    c = add.s(1, 1) | add.s(2) | add.s(3)
    assert isinstance(c, chain) and [t.args for t in c.tasks] == [(1, 1), (2,), (3,)]
    assert isinstance((c | add.s(4)), chain) and len((c | (add.s(4) | add.s(5))).tasks) == 5
    upgraded = group(add.s(i, i) for i in range(3)) | tsum.s()
    assert isinstance(upgraded, chord) and len(upgraded.tasks) == 3
    assert upgraded.body is not None and upgraded.body.task == "tasks.tsum"


def test_bad_input_says_what_to_write(app: Celery) -> None:
    with pytest.raises(TypeError, match="args must be a list or tuple"):
        Signature("tasks.add", args=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no body"):
        chord([app.tasks["tasks.add"].s(1, 1)]).apply_async()
    with pytest.raises(TypeError, match="use a chord"):
        group(app.tasks["tasks.add"].s(1, 1)).apply_async(link=app.tasks["tasks.tsum"].s())
    with pytest.raises(ValueError, match="chunk size must be a whole number above 0"):
        app.tasks["tasks.add"].chunks([(1, 1)], 0)
    with pytest.raises(TypeError, match="items must be a list, tuple or other iterable"):
        app.tasks["tasks.add"].map(5)  # type: ignore[arg-type]


# -- messages, as Celery writes them ---------------------------------------------------------


def test_chain_publishes_the_first_task_with_the_rest_reversed(app: Celery) -> None:
    add = app.tasks["tasks.add"]
    result = chain(add.s(2, 2), add.s(4), add.s(8)).apply_async()
    [(call, message)] = sent(app)
    expected = load_vector("task_v2_chain_first")["message"]["body_json"]
    args, kwargs, embed = body_of(message)
    assert (args, kwargs) == (expected[0], expected[1])
    assert list(embed) == ["callbacks", "errbacks", "chain", "chord"]
    assert [(s["task"], s["args"], sorted(s["options"])) for s in embed["chain"]] == [
        (s["task"], s["args"], sorted(s["options"])) for s in expected[2]["chain"]
    ]
    assert [set(s) for s in embed["chain"]] == [set(s) for s in expected[2]["chain"]]
    # result ids are known up front: the last step's result, whose parents lead back
    assert result.id == embed["chain"][0]["options"]["task_id"]
    assert result.parent.id == embed["chain"][1]["options"]["task_id"]
    assert result.parent.parent.id == call.id
    assert call.root_id == call.id and call.parent_id is None
    assert embed["chain"][0]["options"]["reply_to"] == app.thread_oid


def test_link_and_link_error_go_in_the_embed(app: Celery) -> None:
    add = app.tasks["tasks.add"]
    add.apply_async((2, 3), link=add.s(10), link_error=app.signature("tasks.echo"))
    [(_, message)] = sent(app)
    expected = load_vector("task_v2_link_errback")["message"]["body_json"]
    assert body_of(message) == expected


def test_group_messages_carry_group_and_group_index(app: Celery) -> None:
    add = app.tasks["tasks.add"]
    result = group(add.s(i, i) for i in range(3)).apply_async()
    calls = sent(app)
    expected = load_vector("task_v2_group")
    assert isinstance(result, GroupResult) and len(result) == 3
    for index, (call, message) in enumerate(calls):
        reference = expected["messages"][index]
        assert body_of(message) == reference["body_json"]
        assert list(message.headers) == list(reference["envelope"]["headers"])
        assert (call.group_id, call.group_index) == (result.id, index)
        assert call.id == result.results[index].id and call.root_id == call.id


def test_chord_messages_carry_the_body_in_the_embed(app: Celery) -> None:
    add, tsum = app.tasks["tasks.add"], app.tasks["tasks.tsum"]
    result = chord([add.s(i, i) for i in range(3)], tsum.s()).apply_async()
    calls = sent(app)
    expected = load_vector("task_v2_chord")["header_messages"]
    assert len(calls) == 3 and isinstance(result, AsyncResult)
    group_id = calls[0][0].group_id
    for index, (call, message) in enumerate(calls):
        args, kwargs, embed = body_of(message)
        ref_args, ref_kwargs, ref_embed = expected[index]["body_json"]
        assert (args, kwargs) == (ref_args, ref_kwargs)
        body = embed["chord"]
        assert list(body) == list(ref_embed["chord"]) and body["task"] == "tasks.tsum"
        assert list(body["options"]) == list(ref_embed["chord"]["options"])
        assert body["options"]["task_id"] == result.id
        assert body["options"]["group_id"] == group_id == call.group_id
        assert call.group_index == index
    assert isinstance(result.parent, GroupResult) and result.parent.id == group_id


def test_a_chord_on_a_store_that_cannot_join_is_refused_at_once(tmp_path: Any) -> None:
    app = Celery("t", broker=f"memory://nojoin{id(tmp_path)}", backend="rpc://")

    @app.task(name="tasks.add")
    def add(x: int, y: int) -> int:
        return x + y

    with pytest.raises(ImproperlyConfigured, match="cannot: set result_backend to Redis"):
        chord([add.s(1, 1)], add.s(1)).apply_async()
    app.close()


# -- eager ----------------------------------------------------------------------------------


def test_eager_canvas_runs_in_process(app: Celery) -> None:
    add, tsum = app.tasks["tasks.add"], app.tasks["tasks.tsum"]
    app.conf.task_always_eager = True
    assert (add.s(1, 2) | add.s(3)).apply_async().get() == 6
    assert group(add.s(i, i) for i in range(3)).apply_async().get() == [0, 2, 4]
    assert chord(add.s(i, i) for i in range(3))(tsum.s()).get() == 6
    assert add.s(1).delay(1).get() == 2


def test_replace_runs_the_replacement_eagerly_and_refuses_bad_input(app: Celery) -> None:
    add = app.tasks["tasks.add"]

    @app.task(name="tasks.replacer", bind=True)
    def replacer(self: Any, sig: Any) -> Any:
        return self.replace(signature(sig, app=app))

    app.conf.task_always_eager = True
    assert replacer.delay(add.s(2, 3)).get() == 5
    assert replacer.delay(group(add.s(1, i) for i in range(3))).get() == [1, 2, 3]
    with pytest.raises(ImproperlyConfigured, match="must not be part of a chord"):
        replacer.delay(add.s(1, 1).set(chord=add.s())).get()
    with pytest.raises(ImproperlyConfigured, match="empty chain"):
        replacer.delay(chain()).get()
    with pytest.raises(TypeError, match=r"replace\(\) takes a signature"):
        add.replace("tasks.add")  # type: ignore[arg-type]
