"""Real Celery 5.7 and celeriac share a PostgreSQL result database, both ways.

Celery's own backend object writes (``store_result`` / ``mark_as_failure`` / ``save``) and
celeriac reads, then the reverse; no worker process is needed for either side.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from celeriac import Celery
from celeriac.result import AsyncResult, GroupResult
from tests.servers import run_database

pytestmark = pytest.mark.interop
_schemas = itertools.count()


class InteropError(Exception):
    """A custom exception class both sides can import (this module)."""


@pytest.fixture
def shared_conf() -> dict[str, Any]:
    """Settings both apps use: this run's database, a schema of this test's own.

    (A schema, not table names: Celery keeps its index name when tables are renamed, and
    PostgreSQL index names are per schema.)
    """
    import psycopg

    url = run_database("postgres")
    schema = f"interop_{os.getpid()}_{next(_schemas)}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return {
        "result_backend": "db+" + url.replace("postgresql://", "postgresql+psycopg://"),
        "database_table_schemas": {"task": schema, "group": schema},
        "result_extended": True,
    }


@pytest.fixture
def celery_app(shared_conf: dict[str, Any]) -> Iterator[Any]:
    import celery

    app = celery.Celery("interop", broker="memory://", set_as_current=False)
    app.conf.update(shared_conf)
    yield app
    app.backend.session_manager.invalidate(app.backend.url)
    from celery.backends.database.models import Task, TaskExtended, TaskSet

    for model in (Task, TaskExtended, TaskSet):  # Celery configures its models globally
        model.configure()


@pytest.fixture
def ours(shared_conf: dict[str, Any]) -> Iterator[Celery]:
    app = Celery("interop", broker="memory://interop", set_as_current=False, **shared_conf)
    yield app
    app.close()


def _id() -> str:
    return str(uuid.uuid4())


def test_celery_writes_celeriac_reads(celery_app: Any, ours: Celery) -> None:
    done, failed = _id(), _id()
    celery_app.backend.store_result(done, {"answer": [4, 2]}, "SUCCESS")
    try:
        raise InteropError("boom")
    except InteropError as exc:
        celery_app.backend.mark_as_failure(failed, exc, traceback="Traceback: boom")
    result: AsyncResult[Any] = ours.AsyncResult(done)
    assert result.get(timeout=5) == {"answer": [4, 2]}
    assert result.date_done is not None
    with pytest.raises(InteropError, match="boom"):
        ours.AsyncResult(failed).get(timeout=5)
    assert ours.AsyncResult(failed).traceback == "Traceback: boom"


def test_celery_group_is_restored_by_celeriac(celery_app: Any, ours: Celery) -> None:
    from celery.result import AsyncResult as CeleryResult
    from celery.result import GroupResult as CeleryGroup

    gid, children = _id(), [_id(), _id()]
    for n, child in enumerate(children):
        celery_app.backend.store_result(child, n * 10, "SUCCESS")
    CeleryGroup(gid, [CeleryResult(c, app=celery_app) for c in children], app=celery_app).save()
    restored = ours.backend.restore_group(gid)
    assert isinstance(restored, GroupResult)
    assert [r.id for r in restored.results] == children
    assert restored.get(timeout=5) == [0, 10]


def test_celeriac_writes_celery_reads(celery_app: Any, ours: Celery) -> None:
    from celery.result import GroupResult as CeleryGroup

    done, failed, gid = _id(), _id(), _id()
    ours.backend.mark_as_done(done, [1, "two", None])
    ours.backend.mark_as_failure(failed, InteropError("bad"), traceback="tb")
    assert celery_app.AsyncResult(done).get(timeout=5) == [1, "two", None]
    with pytest.raises(InteropError, match="bad"):
        celery_app.AsyncResult(failed).get(timeout=5)
    assert celery_app.AsyncResult(failed).traceback == "tb"
    group = GroupResult(gid, [ours.AsyncResult(done)], app=ours)
    ours.backend.save_group(gid, group)
    restored = CeleryGroup.restore(gid, app=celery_app)
    assert [r.id for r in restored.results] == [done]
    assert restored.get(timeout=5) == [[1, "two", None]]


def test_extended_fields_both_ways(celery_app: Any, ours: Celery) -> None:
    from types import SimpleNamespace

    theirs, mine = _id(), _id()
    request = SimpleNamespace(
        id=theirs, task="tasks.add", args=(1, 2), kwargs={"k": 1}, hostname="w1", retries=0,
        delivery_info={"routing_key": "celery"}, group=None, parent_id=None, children=[],
        ignore_result=False, stamped_headers=None,
    )  # fmt: skip
    celery_app.backend.store_result(theirs, 3, "SUCCESS", request=request)
    meta = ours.backend.get_task_meta(theirs)
    assert (meta["name"], meta["args"], meta["kwargs"]) == ("tasks.add", [1, 2], {"k": 1})
    assert (meta["worker"], meta["queue"]) == ("w1", "celery")
    ours.backend.store_result(mine, 5, "SUCCESS", request={**vars(request), "id": mine})
    their_meta = celery_app.backend.get_task_meta(mine)
    assert (their_meta["name"], their_meta["args"]) == ("tasks.add", [1, 2])
    assert their_meta["kwargs"] == {"k": 1}
