"""Real Celery 5.7 and celeriac on one RabbitMQ, both ways round, with Redis and rpc results.

``celery->celeriac``: a Celery client sends, a celeriac worker runs the task;
``celeriac->celery``: a celeriac client sends, a real ``celery worker`` runs it.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.interop.amqp_fixtures import amqp_endpoint  # noqa: F401 - the `endpoint` fixture
from tests.interop.conftest import Endpoint, WorkerProcess, other_queue

pytestmark = [
    pytest.mark.interop,
    pytest.mark.slow,
    pytest.mark.parametrize("endpoint", ["amqp+redis", "amqp+rpc"], indirect=True, scope="module"),
]
TIMEOUT = 30


class Link:
    """A client app of one package and a running worker of the other."""

    def __init__(self, client: Any, worker: WorkerProcess) -> None:
        self.client = client
        self.worker = worker

    def send(self, name: str, *args: Any, **options: Any) -> Any:
        return self.client.send_task(name, args=args, **options)


@pytest.fixture(scope="module", params=["celery->celeriac", "celeriac->celery"])
def link(request: pytest.FixtureRequest, endpoint: Endpoint) -> Link:
    if request.param == "celery->celeriac":
        client, worker = "celery_client", "celeriac_worker"
    else:
        client, worker = "celeriac_client", "celery_worker"
    app = request.getfixturevalue(client)
    if client == "celery_client":
        request.addfinalizer(lambda: _stop_celery_rpc_consumer(app))
    return Link(app, request.getfixturevalue(worker))


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
