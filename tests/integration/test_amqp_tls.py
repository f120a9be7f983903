"""``amqps://`` with ``broker_use_ssl`` for real: a TLS front before this run's RabbitMQ.

The machine's RabbitMQ listens only on 5672, so each module run puts a TLS front
(``tests/tls_front.py``) before it. The clients are the real ones: py-amqp's TLS transport
with the options a Celery user writes in ``broker_use_ssl``.
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery
from tests.amqp_helpers import delete_queues
from tests.integration.conftest import WorkerFactory, wait_until
from tests.servers import RABBITMQ_HOST, RABBITMQ_PORT, rabbitmq_url
from tests.tls_front import (
    Certs,
    TLSFront,
    refused_certificate_error,
    round_trip_over_tls,
    running_front,
)


@pytest.fixture(scope="module")
def front(certs: Certs) -> Iterator[TLSFront]:
    rabbitmq_url()  # RabbitMQ is up (or the run says why not) and the run's vhost exists
    with running_front(certs, RABBITMQ_HOST, RABBITMQ_PORT) as tls:
        yield tls


@pytest.fixture
def queue() -> Iterator[str]:
    name = f"tls-{uuid.uuid4().hex[:8]}"
    yield name
    delete_queues(rabbitmq_url(), [name])


def _settings(front: TLSFront, queue: str, ca: Path) -> dict[str, Any]:
    vhost = rabbitmq_url().rsplit("/", 1)[1]
    return {
        "broker_url": f"amqps://guest:guest@127.0.0.1:{front.port}/{vhost}",
        # What a Celery user writes (py-amqp's names); the hostname is checked as well.
        "broker_use_ssl": {
            "ca_certs": str(ca),
            "cert_reqs": int(ssl.CERT_REQUIRED),
            "server_hostname": "localhost",
        },
        "result_backend": "rpc://",
        "task_default_queue": queue,
    }


def test_tasks_and_rpc_results_travel_over_tls(front: TLSFront, certs: Certs, queue: str) -> None:
    # The client's producer and reply consumer, and the worker's connections: all through TLS.
    round_trip_over_tls(front, _settings(front, queue, certs.ca), sessions=3)


def test_a_prefork_worker_and_its_children_connect_over_tls(
    front: TLSFront, certs: Certs, queue: str, tmp_path: Path
) -> None:
    settings = _settings(front, queue, certs.ca)
    client = Celery("tls-client", set_as_current=False)
    client.conf.update(settings)
    factory = WorkerFactory(tmp_path, settings)
    before = front.sessions
    try:
        worker = factory("-P", "prefork", "-c", "2")
        results = [client.send_task("tasks.add", (i, 1)) for i in range(20)]
        assert [r.get(timeout=30) for r in results] == list(range(1, 21))
        assert worker.stop() == 0
        assert "amqps://guest:**@127.0.0.1" in worker.output()
        assert "guest:guest@" not in worker.output()
    finally:
        factory.cleanup()
        client.close()
    # The parent's connection, each child's own, the client's two.
    wait_until(lambda: front.sessions - before >= 5, "the TLS sessions to be counted")


def test_a_certificate_the_ca_did_not_sign_is_refused_with_a_clear_error(
    front: TLSFront, certs: Certs, queue: str
) -> None:
    text = refused_certificate_error(_settings(front, queue, certs.other_ca))
    assert "amqps://guest:**@127.0.0.1" in text
    assert "broker_use_ssl={'ca_certs'" in text  # the fix: which setting names the CA
