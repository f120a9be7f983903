"""Every signal Celery documents is sent, with Celery's sender and keyword arguments."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from celeriac import Celery, signals
from celeriac.execution.einfo import ExceptionInfo
from celeriac.protocol import task_v2
from celeriac.protocol.message import Message, TaskCall
from celeriac.worker.worker import Worker

Seen = dict[str, list[dict[str, Any]]]
ALL = [
    "before_task_publish", "after_task_publish", "task_received", "task_prerun",
    "task_postrun", "task_success", "task_failure", "task_retry", "task_revoked",
    "task_unknown", "task_rejected", "task_internal_error", "worker_init", "worker_ready",
    "worker_shutting_down", "worker_shutdown", "celeryd_init", "setup_logging",
    "after_setup_logger", "after_setup_task_logger",
]  # fmt: skip


@pytest.fixture
def seen() -> Iterator[Seen]:
    record: Seen = {name: [] for name in ALL}
    receivers = []
    for name in ALL:

        def receiver(signal: Any, sender: Any, _name: str = name, **kw: Any) -> None:
            record[_name].append({"sender": sender, **kw})

        receivers.append((getattr(signals, name), receiver))
        getattr(signals, name).connect(receiver)
    yield record
    for sig, receiver in receivers:
        sig.disconnect(receiver)


@pytest.fixture
def app() -> Iterator[Celery]:
    name = f"sig-{time.monotonic_ns()}"
    app = Celery("t", broker=f"memory://{name}", backend=f"cache+memory://{name}")
    yield app
    app.close()


def test_signals_of_a_worker_run(app: Celery, seen: Seen) -> None:
    @app.task(bind=True, max_retries=1)
    def work(self: Any, mode: str) -> int:
        if mode == "fail":
            raise ValueError("bad")
        if mode == "retry" and not self.request.retries:
            raise self.retry(countdown=0)
        return 1

    worker = Worker(app, pool="solo", install_signal_handlers=False, without_banner=True)
    thread = threading.Thread(target=worker.start, daemon=True)
    thread.start()
    try:
        ok = work.delay("ok")
        assert ok.get(timeout=30) == 1
        failed = work.delay("fail")
        with pytest.raises(ValueError):
            failed.get(timeout=30)
        assert work.delay("retry").get(timeout=30) == 1
        expired = work.apply_async(("ok",), expires=-1)
        with pytest.raises(Exception, match=r"expired|revoked"):
            expired.get(timeout=30)
        _send_raw(app, "no.such.task")
        _send_raw(app, work.name, content_type="application/x-unknown")
        deadline = time.monotonic() + 30
        while not (seen["task_unknown"] and seen["task_rejected"]) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        worker.stop()
        thread.join(30)

    pub = seen["before_task_publish"][0]
    assert pub["sender"] == work.name and pub["routing_key"] == "celery"
    assert {"body", "exchange", "headers", "properties", "declare", "retry_policy"} <= set(pub)
    assert seen["after_task_publish"][0]["headers"]["id"] == ok.id
    assert seen["task_received"][0]["request"].id == ok.id
    pre = seen["task_prerun"][0]
    assert (pre["sender"], pre["task_id"], pre["task"], pre["args"]) == (work, ok.id, work, ("ok",))
    post = seen["task_postrun"][0]
    assert (post["retval"], post["state"]) == (1, "SUCCESS")
    assert seen["task_success"][0] == {"sender": work, "result": 1}
    fail = seen["task_failure"][0]
    assert fail["task_id"] == failed.id and isinstance(fail["exception"], ValueError)
    assert isinstance(fail["einfo"], ExceptionInfo) and "ValueError: bad" in str(fail["einfo"])
    assert fail["traceback"] is fail["einfo"].tb
    retry = seen["task_retry"][0]
    assert retry["sender"] is work and retry["request"].retries == 0
    revoked = seen["task_revoked"][0]
    assert revoked["request"].id == expired.id and revoked["expired"] is True
    assert seen["task_unknown"][0]["name"] == "no.such.task"
    # Celery's sender is the consumer; an unknown task sends task_unknown only.
    assert seen["task_unknown"][0]["sender"] is worker.consumer
    [rejected] = seen["task_rejected"]
    assert rejected["sender"] is worker.consumer
    assert rejected["message"].content_type == "application/x-unknown"
    assert seen["celeryd_init"][0]["instance"] is worker
    assert seen["worker_init"][0]["sender"] is worker
    assert seen["worker_ready"][0]["sender"] is worker.consumer
    assert seen["worker_shutting_down"][0]["how"] == "Warm"
    assert seen["worker_shutdown"][0]["sender"] is worker
    # A setup_logging receiver takes logging over, so the after_setup_* signals are not sent.
    assert seen["setup_logging"][0]["loglevel"] == 30
    assert seen["after_setup_logger"] == seen["after_setup_task_logger"] == []
    assert seen["task_internal_error"] == []


def _send_raw(app: Celery, name: str, content_type: str = "application/json") -> None:
    message = task_v2.encode(TaskCall(name=name, id=f"raw-{name}", args=(1,)))
    if content_type != message.content_type:
        message = Message(b"??", content_type, "binary", message.headers, message.properties)
    with app.connection() as conn:
        conn.publish(message, exchange="", routing_key="celery")


def test_task_internal_error_when_the_result_store_fails(
    app: Celery, seen: Seen, monkeypatch: pytest.MonkeyPatch
) -> None:
    from celeriac.execution.execute import execute

    @app.task
    def fine() -> int:
        return 1

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError("store down")

    monkeypatch.setattr(app.backend, "mark_as_done", broken)
    monkeypatch.setattr(app.backend, "mark_as_failure", broken)
    execute(app, fine, TaskCall(name=fine.name, id="t1"), hostname="celery@x")
    [err] = seen["task_internal_error"]
    assert (err["sender"], err["task_id"]) == (fine, "t1")
    assert isinstance(err["exception"], OSError) and err["einfo"].internal


def test_after_setup_logger_signals() -> None:
    from celeriac.utils.log import setup_logging

    got: list[tuple[str, Any]] = []

    def receiver(signal: Any, sender: Any, logger: Any, loglevel: int, **kw: Any) -> None:
        got.append((signal.name, logger.name, loglevel, sorted(kw)))

    signals.after_setup_logger.connect(receiver)
    signals.after_setup_task_logger.connect(receiver)
    try:
        setup_logging("INFO", None, fmt="%(message)s", task_fmt="%(message)s", hijack_root=False)
    finally:
        signals.after_setup_logger.disconnect(receiver)
        signals.after_setup_task_logger.disconnect(receiver)
    assert [g[0] for g in got] == ["after_setup_logger", "after_setup_task_logger"]
    assert got[0][2] == 20 and got[0][3] == ["colorize", "format", "logfile"]


def test_task_class_hooks_with_base_and_app_task(app: Celery) -> None:
    from celeriac.app.task import Task
    from celeriac.execution.execute import execute

    calls: list[tuple[Any, ...]] = []

    class Hooked(Task[Any, Any]):
        def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
            calls.append(("before_start", task_id, tuple(args)))

        def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
            calls.append(("on_success", retval))

        def on_failure(self, exc: BaseException, task_id: str, *rest: Any) -> None:
            calls.append(("on_failure", type(exc), type(rest[-1])))

        def after_return(self, status: str, retval: Any, task_id: str, *rest: Any) -> None:
            calls.append(("after_return", status))

    @app.task(base=Hooked, bind=True)
    def ok(self: Any, x: int) -> dict[str, Any]:
        r = self.request
        return {
            "id": r.id,
            "retries": r.retries,
            "hostname": r.hostname,
            "root": r.root_id,
            "delivery": r.delivery_info,
            "eager": r.is_eager,
            "argsrepr": r.argsrepr,
        }

    other = Celery("t2", broker="memory://hooks2", backend="cache+memory://hooks2", task_cls=Hooked)

    @other.task
    def bad() -> None:
        raise KeyError("k")

    call = TaskCall(name=ok.name, id="h1", args=(2,), root_id="r0", argsrepr="(2,)")
    info = {"exchange": "", "routing_key": "celery"}
    outcome = execute(app, ok, call, hostname="celery@h", delivery_info=info)
    assert outcome.retval == {
        "id": "h1", "retries": 0, "hostname": "celery@h", "root": "r0",
        "delivery": info, "eager": False, "argsrepr": "(2,)",
    }  # fmt: skip
    execute(other, bad, TaskCall(name=bad.name, id="h2"), hostname="celery@h")
    assert [c[0] for c in calls] == [
        "before_start", "on_success", "after_return", "before_start", "on_failure", "after_return",
    ]  # fmt: skip
    assert calls[4] == ("on_failure", KeyError, ExceptionInfo)
    assert calls[2] == ("after_return", "SUCCESS")
