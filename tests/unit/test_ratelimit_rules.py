"""Rate strings, the limiter, task_annotations and the cluster stores."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery
from celeriac.app.annotations import apply_annotations
from celeriac.extras.cluster_store import (
    ClusterStore,
    MemoryClusterStore,
    SQLiteClusterStore,
    store_for_app,
    store_from_url,
)
from celeriac.worker.ratelimit import RateLimiter, parse_rate


@pytest.mark.parametrize(
    ("text", "per_second"),
    [("10/s", 10.0), ("30/m", 0.5), ("7200/h", 2.0), ("4", 4.0), (3, 3.0), (None, 0.0)],
)
def test_parse_rate(text: Any, per_second: float) -> None:
    assert parse_rate(text) == pytest.approx(per_second)


def test_bad_rate_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unit"):
        parse_rate("10/d")


def test_annotations_dict_star_and_class(memory_app: Celery) -> None:
    class Slow:
        def annotate(self, task: Any) -> dict[str, Any] | None:
            return {"time_limit": 30} if task.name == "t.b" else None

    memory_app.conf.task_annotations = [
        {"t.a": {"rate_limit": "1/s"}, "*": {"acks_late": True}},
        Slow(),
    ]

    @memory_app.task(name="t.a")
    def a() -> None: ...

    @memory_app.task(name="t.b")
    def b() -> None: ...

    apply_annotations(memory_app)
    assert (a.rate_limit, a.acks_late) == ("1/s", True)
    assert (b.time_limit, b.acks_late, b.rate_limit) == (30, True, None)


def test_default_rate_limit_and_disable(memory_app: Celery) -> None:
    memory_app.conf.task_default_rate_limit = "1/h"

    @memory_app.task
    def t() -> None: ...

    limiter = RateLimiter(memory_app)
    assert limiter.delay_for(t) == 0.0
    assert limiter.delay_for(t) > 3000
    memory_app.conf.worker_disable_rate_limits = True
    assert RateLimiter(memory_app).delay_for(t) == 0.0


def test_cluster_scope_without_a_store_limits_per_worker(memory_app: Celery) -> None:
    @memory_app.task(rate_limit="1/h", rate_limit_scope="cluster")
    def t() -> None: ...

    limiter = RateLimiter(memory_app, store=None)
    assert limiter.delay_for(t) == 0.0
    assert limiter.delay_for(t) > 3000


def _redis_store() -> ClusterStore:
    from tests.servers import REDIS_BROKER_DB, redis_namespace

    redis_namespace(REDIS_BROKER_DB, "celeriac:ratelimit:*")
    return store_from_url(redis_namespace(REDIS_BROKER_DB, "celeriac:revoked"))


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ClusterStore]:
    if request.param == "memory":
        made: ClusterStore = MemoryClusterStore(str(uuid.uuid4()))
    elif request.param == "sqlite":
        made = SQLiteClusterStore(str(tmp_path / "store.sqlite"))
    else:
        made = _redis_store()
    yield made
    made.close()


def test_store_token_bucket(store: ClusterStore) -> None:
    key = f"test-{uuid.uuid4()}"
    assert store.acquire(key, rate=1.0) == 0.0
    wait = store.acquire(key, rate=1.0)
    assert 0.5 < wait <= 1.0


def test_store_revoked_with_ttl(store: ClusterStore) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    store.add_revoked([a], ttl=60)
    store.add_revoked([b], ttl=-1)  # already expired
    revoked = store.revoked()
    assert a in revoked and b not in revoked


def test_store_for_app_follows_the_broker(tmp_path: Path) -> None:
    assert isinstance(store_for_app(Celery("t", broker="memory://x")), MemoryClusterStore)
    sqlite = Celery("t", broker=f"sqlite:///{tmp_path}/b.sqlite")
    assert isinstance(store_for_app(sqlite), SQLiteClusterStore)
    assert store_for_app(Celery("t", broker="amqp://guest@localhost//")) is None
    assert os.path.basename(str(getattr(store_for_app(sqlite), "path", ""))) == "b.sqlite"


def test_the_cluster_store_plugs_in_as_an_app_hook() -> None:
    from celeriac.app.cluster import ProvidesClusterStore, cluster_store_for
    from celeriac.extras.cluster_store import ClusterStoreHook

    app = Celery("t", broker="memory://hooked")
    providers = [h for h in app.hooks if isinstance(h, ProvidesClusterStore)]
    assert [type(h) for h in providers] == [ClusterStoreHook]
    assert isinstance(cluster_store_for(app), MemoryClusterStore)
