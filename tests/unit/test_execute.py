"""execute(): the hook pipeline around a task body, with the memory backend."""

from __future__ import annotations

import itertools
import logging
from typing import Any

import pytest

from celeriac import signals, states
from celeriac.app.base import Celery
from celeriac.app.task import Task
from celeriac.exceptions import Ignore, Reject, Retry
from celeriac.execution.execute import execute
from celeriac.execution.hooks import Hook, Outcome, TaskRun, default_hooks
from celeriac.protocol.message import TaskCall

_names = itertools.count()


@pytest.fixture
def app() -> Celery:
    name = f"exec{next(_names)}"
    return Celery("t", broker=f"memory://{name}", backend=f"cache+memory://{name}")


def _call(task: Task[Any, Any], *args: Any, task_id: str = "id-1", **kw: Any) -> TaskCall:
    return TaskCall(name=task.name, id=task_id, args=args, kwargs=kw)


def run(app: Celery, task: Task[Any, Any], call: TaskCall, **options: Any) -> Outcome:
    return execute(app, task, call, hostname="celery@test", **options)


def test_success_stores_result(app: Celery) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    outcome = run(app, add, _call(add, 2, 3))
    assert (outcome.state, outcome.retval, outcome.exception) == (states.SUCCESS, 5, None)
    assert outcome.runtime >= 0
    assert app.backend.get_state("id-1") == states.SUCCESS
    assert app.backend.get_result("id-1") == 5


def test_failure_stores_exception_and_traceback(app: Celery) -> None:
    @app.task
    def boom() -> None:
        raise ValueError("bad value")

    outcome = run(app, boom, _call(boom))
    assert outcome.state == states.FAILURE
    assert isinstance(outcome.exception, ValueError)
    assert outcome.traceback and "ValueError: bad value" in outcome.traceback
    assert app.backend.get_state("id-1") == states.FAILURE
    stored = app.backend.get_result("id-1")
    assert isinstance(stored, ValueError) and str(stored) == "bad value"
    assert "bad value" in (app.backend.get_traceback("id-1") or "")


def test_failure_is_logged_like_celery(app: Celery, caplog: pytest.LogCaptureFixture) -> None:
    @app.task
    def boom() -> None:
        raise ValueError("x")

    with caplog.at_level(logging.INFO):
        run(app, boom, _call(boom, task_id="abc"))
    assert f"Task {boom.name}[abc] raised unexpected: ValueError('x')" in caplog.text
    assert "Traceback (most recent call last)" in caplog.text


def test_success_is_logged_with_runtime(app: Celery, caplog: pytest.LogCaptureFixture) -> None:
    @app.task
    def three() -> int:
        return 3

    with caplog.at_level(logging.INFO):
        run(app, three, _call(three, task_id="abc"))
    assert f"Task {three.name}[abc] succeeded in " in caplog.text
    assert caplog.text.rstrip().endswith(": 3")


def test_bind_sees_request(app: Celery) -> None:
    @app.task(bind=True)
    def whoami(self: Task[Any, Any], x: int) -> list[Any]:
        req = self.request
        return [
            req.id,
            req.hostname,
            req.args,
            req.delivery_info["routing_key"],
            x,
            req.called_directly,
            req.reply_to,
        ]

    call = TaskCall(name=whoami.name, id="id-9", args=(7,), retries=2)
    outcome = run(
        app, whoami, call, delivery_info={"routing_key": "celery"}, properties={"reply_to": "r-1"}
    )
    assert outcome.retval == ["id-9", "celery@test", (7,), "celery", 7, False, "r-1"]
    assert whoami.request.id is None  # popped again


def test_ignore_result_header_and_option(app: Celery) -> None:
    @app.task
    def one() -> int:
        return 1

    @app.task(ignore_result=True)
    def two() -> int:
        return 2

    call = TaskCall(name=one.name, id="h", ignore_result=True)
    assert run(app, one, call).state == states.SUCCESS
    assert run(app, two, _call(two, task_id="o")).retval == 2
    assert app.backend.get_state("h") == states.PENDING
    assert app.backend.get_state("o") == states.PENDING


def test_store_errors_even_if_ignored(app: Celery) -> None:
    @app.task(ignore_result=True, store_errors_even_if_ignored=True)
    def fails() -> None:
        raise KeyError("k")

    @app.task(ignore_result=True)
    def fails_quietly() -> None:
        raise KeyError("k")

    run(app, fails, _call(fails, task_id="a"))
    run(app, fails_quietly, _call(fails_quietly, task_id="b"))
    assert app.backend.get_state("a") == states.FAILURE
    assert app.backend.get_state("b") == states.PENDING


def test_control_flow_exceptions(app: Celery) -> None:
    @app.task
    def retry() -> None:
        raise Retry(exc=OSError("later"), when=5)

    @app.task
    def ignore() -> None:
        raise Ignore()

    @app.task
    def reject() -> None:
        raise Reject("no", requeue=True)

    assert run(app, retry, _call(retry, task_id="r")).state == states.RETRY
    assert app.backend.get_state("r") == states.RETRY
    assert isinstance(app.backend.get_result("r"), OSError)
    assert run(app, ignore, _call(ignore, task_id="i")).state == states.IGNORED
    outcome = run(app, reject, _call(reject, task_id="j"))
    assert outcome.state == states.REJECTED
    assert isinstance(outcome.exception, Reject) and outcome.exception.requeue
    assert app.backend.get_state("i") == states.PENDING
    assert app.backend.get_state("j") == states.PENDING


def test_track_started_is_stored_before_the_body(app: Celery) -> None:
    seen: list[str] = []

    @app.task(track_started=True, bind=True)
    def slow(self: Task[Any, Any]) -> None:
        seen.append(app.backend.get_state(self.request.id))

    run(app, slow, _call(slow))
    assert seen == [states.STARTED]


def test_eager_does_not_store_unless_asked(app: Celery) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    assert (
        run(app, add, _call(add, 1, 1, task_id="e"), is_eager=True, store_result=False).retval == 2
    )
    assert app.backend.get_state("e") == states.PENDING
    assert add.apply((2, 2)).get() == 4


def test_handlers_and_signals_order(app: Celery) -> None:
    events: list[str] = []

    class Recorded(Task[Any, Any]):
        def before_start(self, *a: Any) -> None:
            events.append("before_start")

        def on_success(self, *a: Any) -> None:
            events.append("on_success")

        def after_return(self, *a: Any) -> None:
            events.append("after_return")

    @app.task(base=Recorded)
    def job() -> str:
        events.append("body")
        return "ok"

    def prerun(**kw: Any) -> None:
        events.append("prerun")

    def postrun(**kw: Any) -> None:
        events.append("postrun:" + kw["state"])

    def success(**kw: Any) -> None:
        events.append("success_signal")

    signals.task_prerun.connect(prerun, sender=job)
    signals.task_postrun.connect(postrun, sender=job)
    signals.task_success.connect(success, sender=job)
    try:
        run(app, job, _call(job))
    finally:
        signals.task_prerun.disconnect(prerun, sender=job)
        signals.task_postrun.disconnect(postrun, sender=job)
        signals.task_success.disconnect(success, sender=job)
    assert events == [
        "prerun",
        "before_start",
        "body",
        "on_success",
        "success_signal",
        "after_return",
        "postrun:SUCCESS",
    ]


def test_custom_hooks_nest_and_may_replace_the_outcome(app: Celery) -> None:
    order: list[str] = []

    class Named(Hook):
        def __init__(self, name: str) -> None:
            self.name = name

        def before(self, run: TaskRun) -> None:
            order.append(f"before:{self.name}")

        def after(self, run: TaskRun, outcome: Outcome) -> Outcome | None:
            order.append(f"after:{self.name}:{outcome.retval}")
            if self.name == "inner":
                return Outcome(outcome.state, "replaced", None, outcome.runtime, None)
            return None

    @app.task
    def value() -> str:
        return "v"

    outcome = run(app, value, _call(value), hooks=[Named("outer"), Named("inner")])
    assert order == ["before:outer", "before:inner", "after:inner:v", "after:outer:replaced"]
    assert outcome.retval == "replaced"


def test_failing_after_hook_does_not_stop_the_others(
    app: Celery, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(Hook):
        def after(self, run: TaskRun, outcome: Outcome) -> None:
            raise RuntimeError("hook bug")

    @app.task
    def value() -> int:
        return 1

    outcome = run(app, value, _call(value), hooks=[*default_hooks(), Broken()])
    assert outcome.state == states.SUCCESS
    assert app.backend.get_state("id-1") == states.SUCCESS
    assert "hook bug" in caplog.text


def test_unencodable_result_becomes_failure(app: Celery) -> None:
    @app.task
    def weird() -> object:
        return object()

    outcome = run(app, weird, _call(weird))
    assert outcome.state == states.FAILURE
    assert app.backend.get_state("id-1") == states.FAILURE


def test_task_logger_names_the_running_task(app: Celery, tmp_path: Any) -> None:
    from celeriac.utils import log

    logfile = tmp_path / "worker.log"
    touched = [logging.getLogger(n) for n in ("", "celeriac", log.TASK_LOGGER_NAME)]
    levels = [lg.level for lg in touched]
    log.setup_logging("INFO", str(logfile))
    try:
        task_logger = log.get_task_logger("my.tasks")

        @app.task(name="tasks.talk")
        def talk() -> None:
            task_logger.info("hello from the task")

        run(app, talk, _call(talk, task_id="tid-1"))
        task_logger.info("outside")
    finally:
        log._remove_installed()
        logging.getLogger(log.TASK_LOGGER_NAME).propagate = True
        for lg, level in zip(touched, levels, strict=True):
            lg.setLevel(level)
    text = logfile.read_text()
    assert "tasks.talk[tid-1]: hello from the task" in text
    assert "???[???]: outside" in text
    assert "Task tasks.talk[tid-1] succeeded in " in text


def test_parse_loglevel() -> None:
    from celeriac.utils.log import parse_loglevel

    assert parse_loglevel("info") == logging.INFO
    assert parse_loglevel(10) == logging.DEBUG
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        parse_loglevel("loud")


def test_hook_flags_say_which_steps_a_hook_has(app: Celery) -> None:
    calls: list[str] = []

    class AfterOnly(Hook):
        def after(self, run: TaskRun, outcome: Outcome) -> None:
            calls.append("after")

    class Inherits(AfterOnly):
        def before(self, run: TaskRun) -> None:
            calls.append("before")

    assert (AfterOnly.has_before, AfterOnly.has_after) == (False, True)
    assert (Inherits.has_before, Inherits.has_after) == (True, True)
    assert (Hook.has_before, Hook.has_after) == (False, False)

    @app.task
    def value() -> int:
        return 1

    outcome = run(app, value, _call(value), hooks=[Hook(), AfterOnly(), Inherits()])
    assert outcome.state == states.SUCCESS
    assert calls == ["before", "after", "after"]
