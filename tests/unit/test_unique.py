"""Unique tasks: apply_async(unique_for=...). The claim primitive of each store is proved by
tests/conformance/test_cap_unique_claims.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac import Celery
from celeriac.exceptions import ImproperlyConfigured


@pytest.fixture(params=["memory", "sqlite"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Celery]:
    if request.param == "memory":
        name = f"unique-{time.monotonic_ns()}"
        app = Celery("t", broker=f"memory://{name}", backend=f"cache+memory://{name}")
    else:
        app = Celery(
            "t",
            broker=f"sqlite:///{tmp_path}/broker.sqlite",
            backend=f"db+sqlite:///{tmp_path}/results.sqlite",
        )
    yield app
    app.close()


def test_apply_async_returns_the_queued_result(app: Celery) -> None:
    @app.task
    def sync_user(user_id: int) -> int:
        return user_id

    first = sync_user.apply_async((1,), unique_for=60)
    again = sync_user.apply_async((1,), unique_for=60)
    other = sync_user.apply_async((2,), unique_for=60)
    assert again.id == first.id and other.id != first.id
    with app.connection() as conn:
        assert conn.size("celery") == 2
    keyed = sync_user.apply_async((3,), unique_key="user", unique_for=60)
    assert sync_user.apply_async((4,), unique_key="user", unique_for=60).id == keyed.id


def test_task_option_unique_for(app: Celery) -> None:
    @app.task(unique_for=60)
    def report() -> None: ...

    assert report.delay().id == report.delay().id


def test_unique_for_must_be_positive(app: Celery) -> None:
    @app.task
    def job() -> None: ...

    with pytest.raises(ImproperlyConfigured, match="unique_for"):
        job.apply_async(unique_key="x")
