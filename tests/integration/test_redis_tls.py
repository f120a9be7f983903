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

from tests.servers import REDIS_HOST, REDIS_PORT, delete_redis_keys, require_redis
from tests.tls_front import (
    Certs,
    TLSFront,
    refused_certificate_error,
    round_trip_over_tls,
    running_front,
)

#: The worker tests' databases (tests/integration/broker_envs.py); keys here carry a prefix
#: of their own and are deleted after each test.
BROKER_DB, RESULTS_DB = 10, 11


@pytest.fixture(scope="module")
def front(certs: Certs) -> Iterator[TLSFront]:
    require_redis()
    with running_front(certs, REDIS_HOST, REDIS_PORT) as tls:
        yield tls


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
    # The client's and the worker's connections (broker and results): all through TLS.
    round_trip_over_tls(front, _settings(front, prefix, certs.ca), sessions=2)


def test_a_certificate_the_ca_did_not_sign_is_refused_with_a_clear_error(
    front: TLSFront, certs: Certs, prefix: str
) -> None:
    text = refused_certificate_error(_settings(front, prefix, certs.other_ca))
    assert f"rediss://127.0.0.1:{front.port}" in text
    assert "broker_use_ssl={'ssl_ca_certs'" in text  # the fix, with redis-py's option name
