"""The app's own hooks: Celery(hooks=), app.add_hook(before=/after=), the extras plugged in."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from celeriac import states
from celeriac.app.base import Celery
from celeriac.app.hooks import SendHook
from celeriac.execution.execute import execute
from celeriac.execution.hooks import Hook, Outcome, ResultStore, TaskRun
from celeriac.execution.pipeline import compose, pipeline_for
from celeriac.execution.timelimits import TimeLimits
from celeriac.extras.cluster_store import ClusterStoreHook
from celeriac.extras.deadletter import DeadLetters
from celeriac.extras.unique import UniqueTasks
from celeriac.protocol.message import TaskCall

_names = itertools.count()


def make_app(**kw: Any) -> Celery:
    name = f"hooks{next(_names)}"
    return Celery("t", broker=f"memory://{name}", backend=f"cache+memory://{name}", **kw)


class Recorder(Hook):
    def __init__(self, label: str = "", log: list[str] | None = None) -> None:
        self.label = label
        self.log = log if log is not None else []

    def before(self, run: TaskRun) -> None:
        self.log.append(f"before {self.label} {run.name}")

    def after(self, run: TaskRun, outcome: Outcome) -> None:
        self.log.append(f"after {self.label} {outcome.state} {outcome.retval!r}")


class Other(Recorder):
    pass


def labels(app: Celery) -> list[str]:
    return [getattr(h, "label", type(h).__name__) for h in app.hooks]


def test_every_app_has_the_extras_hooks_then_its_own() -> None:
    first, second = Recorder("a"), Recorder("b")
    app = make_app(hooks=[first, second])
    assert [type(h) for h in app.hooks[:3]] == [UniqueTasks, DeadLetters, ClusterStoreHook]
    assert app.hooks[3:] == (first, second)
    assert isinstance(app.hooks[0], SendHook) and not isinstance(app.hooks[1], SendHook)
    assert isinstance(app.hooks, tuple)  # a read-only view


def test_add_hook_goes_last_or_next_to_its_anchor() -> None:
    app = make_app(hooks=[Recorder("a")])
    app.add_hook(Other("last"))
    app.add_hook(Recorder("before-other"), before=Other)
    app.add_hook(Recorder("after-dead"), after=DeadLetters)
    app.add_hook(Recorder("first"), before=UniqueTasks)
    app.add_hook(Other("after-last-recorder"), after=Recorder)  # the last instance
    assert labels(app) == [
        "first",
        "UniqueTasks",
        "DeadLetters",
        "after-dead",
        "ClusterStoreHook",
        "a",
        "before-other",
        "last",
        "after-last-recorder",
    ]


def test_add_hook_with_an_unknown_anchor_or_two_anchors_is_a_clear_error() -> None:
    app = make_app()
    extras = "UniqueTasks, DeadLetters, ClusterStoreHook"
    with pytest.raises(ValueError, match=rf"no hook of class Other .*{extras}"):
        app.add_hook(Recorder(), before=Other)
    with pytest.raises(ValueError, match="not both"):
        app.add_hook(Recorder(), before=DeadLetters, after=UniqueTasks)
    assert len(app.hooks) == 3


def test_hooks_are_fixed_once_frozen() -> None:
    app = make_app()
    app.hook_list.freeze()
    with pytest.raises(RuntimeError, match="fixed once a worker has started"):
        app.add_hook(Recorder())


def test_a_user_hook_observes_eager_runs_inside_the_standard_hooks() -> None:
    log: list[str] = []
    app = make_app(hooks=[Recorder("outer", log), Recorder("inner", log)])

    @app.task
    def add(x: int, y: int) -> int:
        log.append("body")
        return x + y

    assert add.apply((2, 3)).get() == 5
    assert log == [
        f"before outer {add.name}",
        f"before inner {add.name}",
        "body",
        "after inner SUCCESS 5",
        "after outer SUCCESS 5",
    ]
    pipeline = pipeline_for(app, "eager")
    assert pipeline.index(app.hooks[-1]) > next(
        i for i, h in enumerate(pipeline) if isinstance(h, ResultStore)
    )


def test_worker_pipeline_puts_app_hooks_between_result_storage_and_time_limits() -> None:
    mine = Recorder("mine")
    app = make_app(hooks=[mine])
    kinds = [type(h) for h in pipeline_for(app, "worker")]
    assert kinds[-5:] == [UniqueTasks, DeadLetters, ClusterStoreHook, Recorder, TimeLimits]
    assert kinds.index(ResultStore) == len(kinds) - 6
    assert pipeline_for(app, "worker") is pipeline_for(app, "worker")  # composed once
    app.add_hook(Other("late"))
    assert type(pipeline_for(app, "worker")[-2]) is Other  # recomposed after a change


def test_a_hook_added_later_applies_to_the_next_eager_run() -> None:
    app = make_app()

    @app.task
    def value() -> int:
        return 7

    value.apply()
    log: list[str] = []
    app.add_hook(Recorder("x", log))
    value.apply()
    assert log[-1] == "after x SUCCESS 7"


def test_a_hook_that_is_not_a_hook_is_refused_when_composed() -> None:
    with pytest.raises(TypeError, match="not a hook"):
        compose("eager", (object(),))


def test_execute_runs_the_apps_pipeline_by_default() -> None:
    log: list[str] = []
    app = make_app(hooks=[Recorder("r", log)])

    @app.task
    def boom() -> None:
        raise KeyError("x")

    outcome = execute(app, boom, TaskCall(name=boom.name, id="i1"), hostname="h")
    assert outcome.state == states.FAILURE
    assert log[-1].startswith("after r FAILURE KeyError")


def test_unique_tasks_are_a_send_hook_of_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app()
    calls: list[tuple[str, dict[str, Any]]] = []
    hook = app.hooks[0]
    assert isinstance(hook, UniqueTasks)
    original = hook.before_send

    def spy(task: Any, args: Any, kwargs: Any, task_id: str, options: Any) -> str | None:
        calls.append((task.name, dict(options)))
        return original(task, args, kwargs, task_id, options)

    monkeypatch.setattr(hook, "before_send", spy)

    @app.task
    def sync(n: int) -> int:
        return n

    first = sync.apply_async((1,), unique_for=60)
    assert sync.apply_async((1,), unique_for=60).id == first.id
    sync.apply_async((2,))  # not unique: the hook does not apply
    assert calls == [(sync.name, {"unique_for": 60}), (sync.name, {"unique_for": 60})]
