"""Tasks: decorator forms, names, options, eager mode, requests, sending."""

from __future__ import annotations

import sys
import types
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from celeriac import Celery, Task, shared_task
from celeriac.app.registry import SHARED_TASKS, gen_task_name
from celeriac.exceptions import ImproperlyConfigured, NotRegistered
from celeriac.protocol import task_v2


def test_decorator_without_and_with_arguments(memory_app: Celery) -> None:
    @memory_app.task
    def plain(x: int) -> int:
        return x

    @memory_app.task(name="custom.name", ignore_result=True, acks_late=True, serializer="json")
    def named(x: int) -> int:
        return x

    assert plain.name == f"{__name__}.plain"
    assert named.name == "custom.name"
    assert named.ignore_result is True and named.acks_late is True
    assert memory_app.tasks["custom.name"] is named
    assert plain(4) == 4


def test_bind_gives_self_and_request(memory_app: Celery) -> None:
    @memory_app.task(bind=True)
    def who(self: Task[Any, Any], x: int) -> tuple[str, Any]:
        return self.name, self.request.args

    name, args = who.apply((5,)).get()
    assert name == who.name
    assert list(args) == [5]


def test_base_class_and_hooks(memory_app: Celery) -> None:
    seen: list[str] = []

    class Base(Task[Any, Any]):
        def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
            seen.append(f"success:{retval}")

    @memory_app.task(base=Base)
    def double(x: int) -> int:
        return 2 * x

    assert isinstance(double, Base)
    assert double.apply((3,)).get() == 6
    assert seen == ["success:6"]


def test_main_module_name_uses_app_name() -> None:
    assert gen_task_name("__main__", "add", "tasks") == "tasks.add"
    assert gen_task_name("__main__", "add", None) == "__main__.add"
    assert gen_task_name("proj.tasks", "add", "proj") == "proj.tasks.add"


def test_unknown_task_name_raises_not_registered(memory_app: Celery) -> None:
    with pytest.raises(NotRegistered):
        memory_app.tasks["nope.nope"]


def test_shared_task_is_seen_by_every_app(memory_app: Celery) -> None:
    @shared_task
    def shared_add(x: int, y: int) -> int:
        return x + y

    other = Celery("other", broker="memory://shared-other", set_as_current=False)
    assert memory_app.tasks[shared_add.name] is shared_add
    assert other.tasks[shared_add.name] is shared_add
    assert shared_add.name in other.tasks
    SHARED_TASKS.pop(shared_add.name)


def test_autodiscover_tasks(memory_app: Celery, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = types.ModuleType("celeriac_disc_pkg")
    pkg.__path__ = []
    sub = types.ModuleType("celeriac_disc_pkg.tasks")
    imported: list[str] = []
    monkeypatch.setitem(sys.modules, pkg.__name__, pkg)
    monkeypatch.setitem(sys.modules, sub.__name__, sub)
    real_import = __import__("importlib").import_module

    def spy(name: str, *a: Any) -> Any:
        imported.append(name)
        return real_import(name, *a)

    monkeypatch.setattr("celeriac.app.registry.importlib.import_module", spy)
    memory_app.autodiscover_tasks(["celeriac_disc_pkg", "json"])
    assert imported == []  # lazy until the worker finalizes the app
    memory_app.import_default_modules()
    assert "celeriac_disc_pkg.tasks" in imported
    assert "json.tasks" in imported  # tried; a missing related module is not an error


def test_always_eager_runs_inline(memory_app: Celery) -> None:
    memory_app.conf.task_always_eager = True

    @memory_app.task
    def add(x: int, y: int) -> int:
        return x + y

    result = add.delay(2, 3)
    assert result.get() == 5
    assert result.successful()


def test_eager_propagates(memory_app: Celery) -> None:
    memory_app.conf.update(task_always_eager=True)

    @memory_app.task
    def boom() -> None:
        raise ValueError("no")

    failed = boom.delay()
    assert failed.failed()
    with pytest.raises(ValueError, match="no"):
        failed.get()
    memory_app.conf.task_eager_propagates = True
    with pytest.raises(ValueError, match="no"):
        boom.delay()


def _sent(app: Celery, queue: str = "celery") -> Any:
    transport = app.connection()
    deliveries = transport.get([queue], max_messages=10, timeout=1)
    transport.ack(deliveries)
    transport.close()
    return [task_v2.decode(d.message, accept=None) for d in deliveries], deliveries


def _capture(app: Celery, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Record what the producer hands to its transport (ETA messages stay in the broker)."""
    sent: list[dict[str, Any]] = []
    with app.producer.pool.acquire() as transport:  # the pool's one connection, kept idle
        pass

    def publish(
        message: Any, *, exchange: str = "", routing_key: str, not_before: float | None = None
    ) -> None:
        sent.append(
            {
                "call": task_v2.decode(message, accept=None),
                "message": message,
                "exchange": exchange,
                "routing_key": routing_key,
                "not_before": not_before,
            }
        )

    monkeypatch.setattr(transport, "publish", publish)
    return sent


def test_eta_messages_are_held_by_the_broker(memory_app: Celery) -> None:
    @memory_app.task
    def add(x: int, y: int) -> int:
        return x + y

    add.apply_async((1, 2), countdown=30)
    transport = memory_app.connection()
    assert transport.size("celery") == 1
    assert transport.get(["celery"], max_messages=1, timeout=None) == []
    transport.close()


def test_apply_async_options_reach_the_message(
    memory_app: Celery, monkeypatch: pytest.MonkeyPatch
) -> None:
    @memory_app.task
    def add(x: int, y: int) -> int:
        return x + y

    sent = _capture(memory_app, monkeypatch)
    eta = datetime(2031, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    add.apply_async(
        (1, 2),
        eta=eta,
        expires=600,
        queue="other",
        priority=5,
        task_id="abc",
        headers={"x-custom": "v"},
        ignore_result=True,
        time_limit=10,
        soft_time_limit=5,
        shadow="shadowed",
    )
    [record] = sent
    call = record["call"]
    assert call.id == "abc" and call.name == add.name
    assert call.args == (1, 2)
    assert call.eta == eta
    assert record["not_before"] == eta.timestamp()
    assert call.expires is not None
    assert abs((call.expires - datetime.now(timezone.utc)).total_seconds() - 600) < 5
    assert call.ignore_result is True
    assert call.timelimit == (10, 5)
    assert call.shadow == "shadowed"
    assert call.extra_headers["x-custom"] == "v"
    props = record["message"].properties
    assert props["correlation_id"] == "abc"
    assert props["priority"] == 5
    assert 590_000 < int(props["expiration"]) <= 600_000
    assert (record["exchange"], record["routing_key"]) == ("", "other")


def test_countdown_becomes_eta(memory_app: Celery, monkeypatch: pytest.MonkeyPatch) -> None:
    @memory_app.task
    def add(x: int, y: int) -> int:
        return x + y

    sent = _capture(memory_app, monkeypatch)
    before = datetime.now(timezone.utc)
    add.apply_async((1, 2), countdown=20)
    eta = sent[0]["call"].eta
    assert eta is not None
    assert before + timedelta(seconds=19) < eta < before + timedelta(seconds=22)


def test_send_task_by_name_and_compression(memory_app: Celery) -> None:
    result = memory_app.send_task("remote.only", args=[1], kwargs={"a": 2}, compression="zlib")
    [call], [delivery] = _sent(memory_app)
    assert call.name == "remote.only" and call.id == result.id
    assert call.kwargs == {"a": 2}
    assert delivery.message.headers["compression"] == "application/x-gzip"


def test_unknown_apply_async_option_is_a_clear_error(memory_app: Celery) -> None:
    @memory_app.task
    def add(x: int, y: int) -> int:
        return x + y

    with pytest.raises(ImproperlyConfigured, match="countdwn"):
        add.apply_async((1, 2), countdwn=3)


def test_kwargs_must_be_a_mapping(memory_app: Celery) -> None:
    with pytest.raises(TypeError, match="mapping"):
        memory_app.send_task("x", kwargs=[1, 2])  # type: ignore[arg-type]


def test_task_routes_and_default_queue(memory_app: Celery) -> None:
    memory_app.conf.task_routes = {"feed.*": {"queue": "feeds"}, "exact.name": "exactq"}
    memory_app.conf.task_default_queue = "fallback"
    memory_app.send_task("feed.import")
    memory_app.send_task("exact.name")
    memory_app.send_task("other.task")
    assert [c.name for c in _sent(memory_app, "feeds")[0]] == ["feed.import"]
    assert [c.name for c in _sent(memory_app, "exactq")[0]] == ["exact.name"]
    assert [c.name for c in _sent(memory_app, "fallback")[0]] == ["other.task"]
