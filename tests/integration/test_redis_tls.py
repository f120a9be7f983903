"""``rediss://`` with ``broker_use_ssl`` and ``redis_backend_use_ssl`` for real: a TLS front
(``tests/tls_front.py``) before the machine's Redis, which has no TLS listener. The clients
are redis-py's TLS connections with the options a Celery user writes."""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery
from celeriac.exceptions import OperationalError
from celeriac.testing import start_worker
from tests.servers import REDIS_HOST, REDIS_PORT, delete_redis_keys, require_redis
from tests.tls_front import Certs, TLSFront, make_certs

#: The worker tests' databases (tests/integration/broker_envs.py); keys here carry a prefix
#: of their own and are deleted after each test.
BROKER_DB, RESULTS_DB = 10, 11


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory)


@pytest.fixture(scope="module")
def front(certs: Certs) -> Iterator[TLSFront]:
    require_redis()
    tls = TLSFront(certs, REDIS_HOST, REDIS_PORT)
    tls.start()
    yield tls
    tls.stop()


@pytest.fixture
def prefix() -> Iterator[str]:
    name = f"celeriac-tls-{uuid.uuid4().hex[:8]}:"
    yield name
    delete_redis_keys(BROKER_DB, name + "*")
    delete_redis_keys(RESULTS_DB, name + "*")


def _settings(front: TLSFront, prefix: str, ca: Path) -> dict[str, Any]:
    options = {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": str(ca)}
    where = f"rediss://127.0.0.1:{front.port}"
    return {
        "broker_url": f"{where}/{BROKER_DB}",
        "broker_use_ssl": options,
        "broker_transport_options": {"global_keyprefix": prefix},
        "result_backend": f"{where}/{RESULTS_DB}",
        "redis_backend_use_ssl": options,
        "result_backend_transport_options": {"global_keyprefix": prefix},
    }


def test_tasks_and_results_travel_over_tls(front: TLSFront, certs: Certs, prefix: str) -> None:
    app = Celery("tls", set_as_current=False)
    app.conf.update(_settings(front, prefix, certs.ca))

    @app.task(name="tls.add")
    def add(x: int, y: int) -> int:
        return x + y

    before = front.sessions
    try:
        with start_worker(app, pool="threads", concurrency=2):
            results = [add.delay(i, i) for i in range(10)]
            assert [r.get(timeout=30) for r in results] == [2 * i for i in range(10)]
            assert results[0].state == "SUCCESS"
    finally:
        app.close()
    assert front.sessions - before >= 2  # the client's and the worker's connections


def test_a_certificate_the_ca_did_not_sign_is_refused_with_a_clear_error(
    front: TLSFront, certs: Certs, prefix: str
) -> None:
    app = Celery("tls-bad", set_as_current=False)
    app.conf.update(_settings(front, prefix, certs.other_ca), task_publish_retry=False)
    try:
        with pytest.raises(OperationalError) as err:
            app.send_task("tls.add", (1, 2), ignore_result=True)
    finally:
        app.close()
    text = str(err.value)
    assert f"rediss://127.0.0.1:{front.port}" in text
    assert "CERTIFICATE_VERIFY_FAILED" in text
    assert "broker_use_ssl" in text  # the fix: which setting names the CA
