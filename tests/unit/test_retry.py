"""Task.retry(), autoretry_for and backoff, run through execute() on the memory broker."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from celeriac import signals, states
from celeriac.app.base import Celery
from celeriac.app.task import Task
from celeriac.exceptions import MaxRetriesExceededError, Retry
from celeriac.execution.execute import execute
from celeriac.execution.hooks import Outcome
from celeriac.execution.retries import backoff_delay
from celeriac.protocol import task_v2
from celeriac.protocol.message import Message, TaskCall

_names = itertools.count()


@pytest.fixture
def app() -> Celery:
    name = f"retry{next(_names)}"
    return Celery("t", broker=f"memory://{name}", backend=f"cache+memory://{name}")


def run(app: Celery, task: Task[Any, Any], *args: Any, retries: int = 0, **kw: Any) -> Outcome:
    call = TaskCall(
        name=task.name,
        id="tid",
        args=args,
        kwargs=kw,
        retries=retries,
        root_id="tid",
        origin="gen1@client",
    )
    info = {"exchange": "", "routing_key": "celery", "priority": 0, "redelivered": False}
    return execute(app, task, call, hostname="celery@test", delivery_info=info)


@pytest.fixture(autouse=True)
def sent() -> Iterator[list[tuple[str, Message]]]:
    """Every message published during the test, as (routing key, message)."""
    captured: list[tuple[str, Message]] = []

    def receiver(sender: Any, body: bytes, routing_key: str, **kw: Any) -> None:
        message = Message(body, "application/json", "utf-8", kw["headers"], kw["properties"])
        captured.append((routing_key, message))

    signals.after_task_publish.connect(receiver)
    yield captured
    signals.after_task_publish.disconnect(receiver)


def published(sent: list[tuple[str, Message]], queue: str = "celery") -> list[TaskCall]:
    return [task_v2.decode(m, accept=None) for key, m in sent if key == queue]


def test_retry_republishes_same_id_with_retries_plus_one(
    app: Celery, sent: list[tuple[str, Message]]
) -> None:
    @app.task(bind=True, max_retries=3)
    def flaky(self: Task[Any, Any], x: int) -> None:
        raise self.retry(exc=KeyError("again"), countdown=30)

    before = datetime.now(timezone.utc)
    outcome = run(app, flaky, 7)
    assert outcome.state == states.RETRY
    assert isinstance(outcome.exception, Retry)
    [call] = published(sent)
    assert (call.id, call.args, call.retries, call.root_id) == ("tid", (7,), 1, "tid")
    assert call.parent_id == "tid"  # Celery: the retrying task is the new message's parent
    assert call.origin == "gen1@client"  # the first sender's origin is kept
    assert call.eta is not None
    assert before + timedelta(seconds=29) < call.eta < before + timedelta(seconds=32)
    assert app.backend.get_state("tid") == states.RETRY
    stored = app.backend.get_result("tid")
    assert isinstance(stored, KeyError)


def test_retry_state_is_stored_before_the_retry_is_sent(app: Celery) -> None:
    """A next attempt that runs and finishes at once (another thread or worker) must never
    have its final state replaced by this attempt's RETRY: RETRY is stored first, once."""
    states_at_send: list[str] = []
    writes: list[str] = []
    store = app.backend.store_result

    def counting(task_id: str, result: Any, state: str, **kw: Any) -> None:
        writes.append(state)
        store(task_id, result, state, **kw)

    def receiver(sender: Any, **kw: Any) -> None:
        states_at_send.append(app.backend.get_state("tid"))

    @app.task(bind=True)
    def flaky(self: Task[Any, Any]) -> None:
        raise self.retry(exc=KeyError("again"), countdown=0)

    app.backend.store_result = counting  # type: ignore[method-assign]
    signals.before_task_publish.connect(receiver)
    try:
        outcome = run(app, flaky)
    finally:
        signals.before_task_publish.disconnect(receiver)
    assert outcome.state == states.RETRY and states_at_send == [states.RETRY]
    assert writes == [states.RETRY]
    assert isinstance(app.backend.get_result("tid"), KeyError)


def test_retry_state_is_not_stored_when_results_are_ignored(app: Celery) -> None:
    @app.task(bind=True, ignore_result=True)
    def flaky(self: Task[Any, Any]) -> None:
        raise self.retry(exc=KeyError("again"), countdown=0)

    assert run(app, flaky).state == states.RETRY
    assert app.backend.get_state("tid") == states.PENDING


def test_default_retry_delay_and_explicit_eta(app: Celery, sent: list[tuple[str, Message]]) -> None:
    eta = datetime(2030, 1, 1, tzinfo=timezone.utc)

    @app.task(bind=True, default_retry_delay=5)
    def later(self: Task[Any, Any], explicit: bool) -> None:
        raise self.retry(eta=eta) if explicit else self.retry()

    now = datetime.now(timezone.utc)
    run(app, later, False)
    run(app, later, True)
    first, second = published(sent)
    assert first.eta is not None and abs((first.eta - now).total_seconds() - 5) < 2
    assert second.eta == eta


def test_retry_to_another_queue(app: Celery, sent: list[tuple[str, Message]]) -> None:
    @app.task(bind=True)
    def moved(self: Task[Any, Any]) -> None:
        raise self.retry(queue="slow", countdown=0)

    run(app, moved)
    assert published(sent, "celery") == []
    assert [c.retries for c in published(sent, "slow")] == [1]


def test_max_retries_exceeded_raises_exc_or_max_retries_error(
    app: Celery, sent: list[tuple[str, Message]]
) -> None:
    @app.task(bind=True, max_retries=2)
    def capped(self: Task[Any, Any], with_exc: bool) -> None:
        raise self.retry(exc=ValueError("gave up") if with_exc else None, countdown=0)

    outcome = run(app, capped, True, retries=2)
    assert outcome.state == states.FAILURE
    assert isinstance(outcome.exception, ValueError)
    outcome = run(app, capped, False, retries=2)
    assert isinstance(outcome.exception, MaxRetriesExceededError)
    assert capped.MaxRetriesExceededError is MaxRetriesExceededError
    assert published(sent) == []


def test_max_retries_none_retries_forever_and_override(app: Celery) -> None:
    @app.task(bind=True, max_retries=None)
    def forever(self: Task[Any, Any], limit: int | None) -> None:
        raise self.retry(countdown=0, max_retries=limit)

    assert run(app, forever, None, retries=500).state == states.RETRY
    assert run(app, forever, 1, retries=1).state == states.FAILURE


def test_retry_called_directly_raises_the_exception(app: Celery) -> None:
    @app.task(bind=True)
    def direct(self: Task[Any, Any]) -> None:
        raise self.retry(exc=OSError("down"))

    with pytest.raises(OSError, match="down"):
        direct()


def test_retry_throw_false_returns_retry(app: Celery, sent: list[tuple[str, Message]]) -> None:
    @app.task(bind=True)
    def quiet(self: Task[Any, Any]) -> str:
        ret = self.retry(countdown=0, throw=False)
        assert isinstance(ret, Retry)
        return "done"

    assert run(app, quiet).state == states.SUCCESS
    assert len(published(sent)) == 1


def test_on_retry_and_task_retry_signal(app: Celery) -> None:
    seen: list[Any] = []

    class Base(Task[Any, Any]):
        def on_retry(self, exc: BaseException, task_id: str, *rest: Any) -> None:
            seen.append(("on_retry", exc, task_id, str(rest[-1])))

    @app.task(bind=True, base=Base)
    def hooked(self: Task[Any, Any]) -> None:
        raise self.retry(exc=KeyError("k"), countdown=0)

    def receiver(sender: Any, request: Any, reason: Any, einfo: Any, **kw: Any) -> None:
        seen.append(("signal", sender, request.id, reason))

    signals.task_retry.connect(receiver)
    try:
        run(app, hooked)
    finally:
        signals.task_retry.disconnect(receiver)
    kind, exc, task_id, einfo = seen[0]
    assert (kind, task_id, type(exc)) == ("on_retry", "tid", KeyError)
    assert "Retry" in einfo
    assert seen[1][:3] == ("signal", hooked, "tid") and isinstance(seen[1][3], Retry)


def test_autoretry_for_with_backoff(app: Celery, sent: list[tuple[str, Message]]) -> None:
    @app.task(
        autoretry_for=(ConnectionError,),
        dont_autoretry_for=(ConnectionResetError,),
        retry_backoff=2,
        retry_jitter=False,
        retry_kwargs={"max_retries": 5},
    )
    def fetch(kind: str) -> None:
        raise ConnectionResetError() if kind == "reset" else ConnectionError("down")

    now = datetime.now(timezone.utc)
    assert run(app, fetch, "x", retries=3).state == states.RETRY
    [call] = published(sent)
    assert call.retries == 4
    assert call.eta is not None and abs((call.eta - now).total_seconds() - 16) < 2  # 2 * 2**3
    assert run(app, fetch, "x", retries=5).state == states.FAILURE  # retry_kwargs max_retries
    outcome = run(app, fetch, "reset")
    assert outcome.state == states.FAILURE and isinstance(outcome.exception, ConnectionResetError)


def test_autoretry_for_async_task(app: Celery) -> None:
    @app.task(autoretry_for=(KeyError,), max_retries=1)
    async def lookup() -> None:
        raise KeyError("missing")

    assert run(app, lookup).state == states.RETRY
    assert run(app, lookup, retries=1).state == states.FAILURE


def test_backoff_delay_matches_celery() -> None:
    assert [backoff_delay(1, r, 600, False) for r in range(5)] == [1, 2, 4, 8, 16]
    assert backoff_delay(3, 10, 600, False) == 600
    assert all(0 <= backoff_delay(1, 4, 600, True) <= 16 for _ in range(50))


def test_eager_retry_runs_again_at_once(app: Celery) -> None:
    attempts: list[int] = []

    @app.task(bind=True, max_retries=3)
    def eager(self: Task[Any, Any]) -> int:
        attempts.append(self.request.retries)
        if len(attempts) < 3:
            raise self.retry(countdown=60)
        return len(attempts)

    result = eager.apply()
    assert (result.get(), attempts) == (3, [0, 1, 2])
