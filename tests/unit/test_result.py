"""AsyncResult, EagerResult, ResultSet, GroupResult and result_from_tuple."""

from __future__ import annotations

import copy
import itertools
import pickle
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from celeriac import states
from celeriac.app.config import Settings
from celeriac.backends.base import ResultBackend
from celeriac.backends.memory import MemoryBackend
from celeriac.exceptions import TaskRevokedError, TimeoutError
from celeriac.result import (
    AsyncResult,
    EagerResult,
    GroupResult,
    ResultSet,
    allow_join_result,
    denied_join_result,
    result_from_tuple,
    task_join_will_block,
)

_names = itertools.count()


class FakeControl:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, dict[str, Any]]] = []

    def revoke(self, task_id: Any, **options: Any) -> None:
        self.calls.append((task_id, options))


class FakeApp:
    """The two attributes results need from an app, plus ``control``."""

    def __init__(self, backend: ResultBackend, with_control: bool = True) -> None:
        self.backend = backend
        self.conf = backend.conf
        if with_control:
            self.control = FakeControl()


@pytest.fixture
def backend() -> Iterator[ResultBackend]:
    backend = MemoryBackend(f"memory://unit-result-{next(_names)}", Settings())
    yield backend
    backend.close()


def test_identity(backend: ResultBackend) -> None:
    result: AsyncResult[int] = AsyncResult("abc", backend=backend)
    assert result.id == result.task_id == "abc"
    assert repr(result) == "<AsyncResult: abc>"
    assert str(result) == "abc"
    assert result == AsyncResult("abc", backend=backend)
    assert result == "abc"
    assert result != AsyncResult("other", backend=backend)
    assert hash(result) == hash("abc")
    assert len({result, AsyncResult("abc", backend=backend)}) == 1
    with pytest.raises(ValueError, match="valid id"):
        AsyncResult(None, backend=backend)  # type: ignore[arg-type]


def test_state_views(backend: ResultBackend) -> None:
    result: AsyncResult[int] = AsyncResult("t", backend=backend)
    assert result.state == result.status == states.PENDING
    assert result.result is None and result.info is None
    backend.mark_as_done("t", 7)
    assert result.get(timeout=1) == 7
    assert result.date_done is not None
    assert result.children == []


def test_ready_result_is_cached(backend: ResultBackend) -> None:
    backend.mark_as_done("t", 1)
    result: AsyncResult[int] = AsyncResult("t", backend=backend)
    assert result.get() == 1
    backend.forget("t")
    assert result.result == 1  # the cached meta, as in Celery


def test_get_with_callback_and_on_message(backend: ResultBackend) -> None:
    backend.mark_as_done("t", 5)
    seen: list[Any] = []
    result: AsyncResult[int] = AsyncResult("t", backend=backend)
    value = result.get(callback=lambda i, v: seen.append((i, v)), on_message=seen.append)
    assert value == 5
    assert seen[0]["status"] == states.SUCCESS
    assert seen[1] == ("t", 5)


def test_get_timeout(backend: ResultBackend) -> None:
    result: AsyncResult[int] = AsyncResult("never", backend=backend)
    with pytest.raises(TimeoutError):
        result.get(timeout=0.01, interval=0.01)
    assert result.TimeoutError is TimeoutError


def test_get_inside_a_task_is_refused(backend: ResultBackend) -> None:
    backend.mark_as_done("t", 1)
    result: AsyncResult[int] = AsyncResult("t", backend=backend)
    with denied_join_result():
        assert task_join_will_block()
        with pytest.raises(RuntimeError, match=r"Never call result\.get"):
            result.get()
        with allow_join_result():
            assert result.get() == 1
        assert result.get(disable_sync_subtasks=False) == 1
    assert not task_join_will_block()


def test_join_flag_is_per_thread() -> None:
    seen: list[bool] = []
    with denied_join_result():
        thread = threading.Thread(target=lambda: seen.append(task_join_will_block()))
        thread.start()
        thread.join(5)
    assert seen == [False]


def test_parent_failure_propagates(backend: ResultBackend) -> None:
    backend.mark_as_failure("parent", KeyError("p"))
    backend.mark_as_done("child", 2)
    parent: AsyncResult[Any] = AsyncResult("parent", backend=backend)
    child: AsyncResult[int] = AsyncResult("child", backend=backend, parent=parent)
    with pytest.raises(KeyError):
        child.get(timeout=1)
    assert child.get(timeout=1, follow_parents=False) == 2
    assert child.as_list() == ["child", "parent"]


def test_ignored_result_returns_none(backend: ResultBackend) -> None:
    result: AsyncResult[int] = AsyncResult("t", backend=backend)
    result.ignored = True
    assert result.get(timeout=0) is None


def test_forget_forgets_parents(backend: ResultBackend) -> None:
    backend.mark_as_done("p", 1)
    backend.mark_as_done("c", 2)
    parent: AsyncResult[int] = AsyncResult("p", backend=backend)
    child: AsyncResult[int] = AsyncResult("c", backend=backend, parent=parent)
    child.forget()
    assert backend.get_state("p") == backend.get_state("c") == states.PENDING


def test_revoke_goes_through_app_control(backend: ResultBackend) -> None:
    app = FakeApp(backend)
    AsyncResult("t", app=app).revoke(terminate=True, signal="KILL")
    assert app.control.calls == [
        ("t", {"connection": None, "terminate": True, "signal": "KILL", "reply": False,
               "timeout": None})
    ]  # fmt: skip


def test_revoke_without_control(backend: ResultBackend) -> None:
    app = FakeApp(backend, with_control=False)
    with pytest.raises(NotImplementedError, match=r"remote control.*app=<your Celery app>"):
        AsyncResult("t", app=app).revoke()
    with pytest.raises(NotImplementedError, match="remote control"):
        GroupResult("g", [AsyncResult("a", app=app)]).revoke()


def test_backend_defaults_to_the_apps(backend: ResultBackend) -> None:
    backend.mark_as_done("t", 3)
    assert AsyncResult("t", app=FakeApp(backend)).get() == 3


def test_as_tuple_and_back(backend: ResultBackend) -> None:
    parent: AsyncResult[Any] = AsyncResult("p", backend=backend)
    child: AsyncResult[Any] = AsyncResult("c", backend=backend, parent=parent)
    assert child.as_tuple() == (("c", (("p", None), None)), None)
    rebuilt = result_from_tuple([["c", [["p", None], None]], None], backend=backend)
    assert rebuilt == child
    assert rebuilt.parent == parent
    assert result_from_tuple(child) is child


def test_copy_and_pickle(backend: ResultBackend) -> None:
    result: AsyncResult[int] = AsyncResult("t", backend=backend)
    assert copy.copy(result) == result
    assert pickle.loads(pickle.dumps(result)).id == "t"


def test_eager_result() -> None:
    ok: EagerResult[int] = EagerResult("e1", 4, states.SUCCESS)
    assert ok.get() == 4 and ok.ready() and ok.successful()
    assert repr(ok) == "<EagerResult: e1>"
    failed: EagerResult[Any] = EagerResult("e2", ValueError("x"), states.FAILURE, "tb")
    with pytest.raises(ValueError):
        failed.get()
    assert isinstance(failed.get(propagate=False), ValueError)
    assert failed.traceback == "tb" and failed.failed()
    ok.revoke()
    assert ok.state == states.REVOKED
    with pytest.raises(TaskRevokedError):
        ok.get()
    assert pickle.loads(pickle.dumps(failed)).traceback == "tb"


def test_result_set(backend: ResultBackend) -> None:
    members: list[AsyncResult[Any]] = [AsyncResult(i, backend=backend) for i in ("a", "b")]
    rs = ResultSet(members)
    assert len(rs) == 2 and rs[0].id == "a" and [r.id for r in rs] == ["a", "b"]
    assert rs.waiting() and not rs.ready()
    backend.mark_as_done("a", 1)
    backend.mark_as_failure("b", ValueError("no"))
    assert rs.ready() and rs.failed() and not rs.successful()
    assert rs.completed_count() == 1
    with pytest.raises(ValueError):
        rs.join(timeout=1)
    assert [type(v) for v in rs.get(propagate=False)] == [int, ValueError]
    collected: list[tuple[str, Any]] = []
    assert rs.join(callback=lambda i, v: collected.append((i, v)), propagate=False) == []
    assert collected[0] == ("a", 1)
    rs.discard("missing")
    rs.remove("a")
    assert [r.id for r in rs] == ["b"]
    with pytest.raises(KeyError):
        rs.remove("a")
    rs.add(members[0])
    rs.add(members[0])
    assert len(rs) == 2
    assert repr(rs) == "<ResultSet: [b, a]>"


def test_result_set_join_timeout_spans_all_members(backend: ResultBackend) -> None:
    rs = ResultSet([AsyncResult("x", backend=backend), AsyncResult("y", backend=backend)])
    with pytest.raises(TimeoutError):
        rs.join(timeout=0.02, interval=0.01)


def test_group_result_tuple_matches_celery(backend: ResultBackend) -> None:
    group = GroupResult("g", [AsyncResult("a", backend=backend), AsyncResult("b", backend=backend)])
    assert group.as_tuple() == (("g", None), [(("a", None), None), (("b", None), None)])
    rebuilt = result_from_tuple([["g", None], [[["a", None], None], [["b", None], None]]])
    assert isinstance(rebuilt, GroupResult)
    assert rebuilt.id == "g" and [r.id for r in rebuilt.results] == ["a", "b"]
    assert repr(group) == "<GroupResult: g [a, b]>"
    assert group == "g" and hash(group) == hash("g") and str(group) == "g"
    assert group.children == group.results
    assert not GroupResult()


def test_group_save_and_restore(backend: ResultBackend) -> None:
    group = GroupResult("g", [AsyncResult("a", backend=backend)])
    assert group.save() is group
    restored = GroupResult.restore("g", app=FakeApp(backend))
    assert restored == group
    group.delete()
    assert GroupResult.restore("g", backend=backend) is None
    with pytest.raises(ValueError, match="no id"):
        GroupResult(None, []).save(backend)


def test_group_revoke(backend: ResultBackend) -> None:
    app = FakeApp(backend)
    GroupResult("g", [AsyncResult("a", app=app), AsyncResult("b", app=app)]).revoke()
    assert app.control.calls[0][0] == ["a", "b"]
