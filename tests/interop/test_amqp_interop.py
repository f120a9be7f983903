"""Real Celery 5.7 and celeriac on one RabbitMQ, both ways round, with Redis and rpc results.

``celery->celeriac``: a Celery client sends, a celeriac worker runs the task;
``celeriac->celery``: a celeriac client sends, a real ``celery worker`` runs it.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.interop.amqp_fixtures import amqp_endpoint  # noqa: F401 - the `endpoint` fixture
from tests.interop.conftest import DIRECTIONS, Endpoint, Link, other_queue, serve_link

pytestmark = [
    pytest.mark.interop,
    pytest.mark.slow,
    pytest.mark.parametrize("endpoint", ["amqp+redis", "amqp+rpc"], indirect=True, scope="module"),
]
TIMEOUT = 30


@pytest.fixture(scope="module", params=DIRECTIONS)
def link(
    request: pytest.FixtureRequest, endpoint: Endpoint, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Link]:
    for made in serve_link(request, endpoint, tmp_path_factory):
        if made.name == "celery->celeriac":
            request.addfinalizer(functools.partial(_stop_celery_rpc_consumer, made.client))
        yield made


def _stop_celery_rpc_consumer(app: Any) -> None:
    # Celery's app.close() leaves the rpc backend's reply consumer connection open.
    consumer = getattr(app.backend, "result_consumer", None)
    if getattr(consumer, "_consumer", None) is not None:
        consumer.stop()


def test_success_and_many_pending_results(link: Link) -> None:
    results = [link.send("interop.add", i, i) for i in range(10)]
    assert [r.get(timeout=TIMEOUT) for r in results] == [2 * i for i in range(10)]
    assert all(r.ready() for r in results)


def test_failure_is_reraised_as_the_original_type(link: Link) -> None:
    result = link.send("interop.fail", "boom")
    with pytest.raises(ValueError) as info:
        result.get(timeout=TIMEOUT)
    assert info.value.args == ("boom", 42)
    assert result.state == "FAILURE"


def test_named_queue_and_countdown(link: Link, endpoint: Endpoint) -> None:
    sent = time.time()
    assert link.send("interop.add", 20, 22, queue=other_queue(endpoint)).get(timeout=TIMEOUT) == 42
    assert link.send("interop.now", countdown=1).get(timeout=TIMEOUT) >= sent + 0.9


def test_retried_task(link: Link) -> None:
    assert link.send("interop.flaky").get(timeout=TIMEOUT) == 1
