"""Real Celery 5.7 and celeriac on one Redis, both ways round.

``celery->celeriac``: a Celery client sends, a celeriac worker runs the task;
``celeriac->celery``: a celeriac client sends, a real ``celery worker`` runs it.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import redis

from tests.interop.conftest import DIRECTIONS, Endpoint, Link, other_queue, serve_link
from tests.servers import REDIS_HOST, REDIS_INTEROP_DB, REDIS_PORT

pytestmark = [
    pytest.mark.interop,
    pytest.mark.slow,
    pytest.mark.parametrize("endpoint", ["redis"], indirect=True, scope="module"),
]
TIMEOUT = 30


@pytest.fixture(scope="module", params=DIRECTIONS)
def link(
    request: pytest.FixtureRequest, endpoint: Endpoint, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Link]:
    yield from serve_link(request, endpoint, tmp_path_factory)


def test_success_and_kwargs(link: Link) -> None:
    assert link.send("interop.add", 2, 3).get(timeout=TIMEOUT) == 5
    by_name = link.client.send_task("interop.add", kwargs={"x": 40, "y": 2})
    assert by_name.get(timeout=TIMEOUT) == 42
    assert by_name.state == "SUCCESS"


def test_failure_is_reraised_as_the_original_type(link: Link) -> None:
    result = link.send("interop.fail", "boom")
    with pytest.raises(ValueError) as info:
        result.get(timeout=TIMEOUT)
    assert info.value.args == ("boom", 42)
    assert result.state == "FAILURE"
    assert "ValueError" in (result.traceback or "")


def test_countdown_and_eta(link: Link) -> None:
    sent = time.time()
    by_countdown = link.send("interop.now", countdown=1)
    eta = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1)
    by_eta = link.send("interop.now", eta=eta)
    assert by_countdown.get(timeout=TIMEOUT) >= sent + 0.9
    assert by_eta.get(timeout=TIMEOUT) >= eta.timestamp() - 0.1


def test_named_queue(link: Link, endpoint: Endpoint) -> None:
    result = link.send("interop.add", 20, 22, queue=other_queue(endpoint))
    assert result.get(timeout=TIMEOUT) == 42


def test_json_special_types_round_trip(link: Link) -> None:
    when = dt.datetime(2026, 11, 24, 3, 11, 6, 127682, tzinfo=dt.timezone.utc)
    ident = uuid.UUID("b3e2fb55-f032-4939-9e96-6634c9e68021")
    values = [when, ident, Decimal("3.14"), b"\x00\xffbytes", dt.date(2026, 1, 2)]
    kwargs = {"when": when, "amount": Decimal("1.5")}
    result = link.client.send_task("interop.echo", args=values, kwargs=kwargs)
    assert result.get(timeout=TIMEOUT) == {
        "args": values,
        "kwargs": {"when": when, "amount": Decimal("1.5")},
    }


def test_ignore_result_stores_nothing(link: Link) -> None:
    ignored = link.send("interop.add", 1, 2, ignore_result=True)
    deadline = time.monotonic() + TIMEOUT
    while f"interop.add[{ignored.id}] succeeded" not in link.worker.output():
        assert time.monotonic() < deadline, link.worker.output()
        time.sleep(0.02)
    assert link.client.AsyncResult(ignored.id).state == "PENDING"


def test_retried_task(link: Link) -> None:
    assert link.send("interop.flaky").get(timeout=TIMEOUT) == 1


def test_priority_lists_and_order(link: Link, endpoint: Endpoint, start_worker: Any) -> None:
    """Priorities land in kombu's step lists; the worker serves the lower number first."""
    queue = f"{endpoint.conf['task_default_queue']}.prio"
    prefix = endpoint.conf["broker_transport_options"]["global_keyprefix"]
    low = link.send("interop.now", "low", queue=queue, priority=9)
    high = link.send("interop.now", "high", queue=queue, priority=0)
    server = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_INTEROP_DB)
    try:
        assert server.llen(f"{prefix}{queue}\x06\x169") == 1
        assert server.llen(f"{prefix}{queue}") == 1
    finally:
        server.close()
    start_worker(link.worker_package, "-P", "solo", "-Q", queue)
    assert high.get(timeout=TIMEOUT) < low.get(timeout=TIMEOUT)
