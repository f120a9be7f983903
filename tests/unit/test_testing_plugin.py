"""The celeriac.testing pytest plugin: Celery's fixture names, a real in-thread worker."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

# The plugin is registered through the ``pytest11`` entry point: installing celeriac is
# enough, no ``pytest_plugins`` line needed.
CONFTEST = """
"""

TESTS = """
import pytest
from celeriac.exceptions import Retry


@pytest.fixture(scope="session")
def celery_config():
    return {"task_default_queue": "plugin-q"}


def test_real_worker(celery_app, celery_worker):
    calls = []

    @celery_app.task(bind=True, max_retries=2, default_retry_delay=0)
    def flaky(self, x):
        calls.append(x)
        if len(calls) < 2:
            raise self.retry(countdown=0)
        return x * 2

    assert celery_worker.ready.is_set()
    assert flaky.delay(21).get(timeout=10) == 42
    assert len(calls) == 2
    assert celery_app.conf.task_default_queue == "plugin-q"
"""


def test_fixtures_run_a_real_worker(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_plugin=TESTS)
    result = pytester.runpytest_inprocess("-p", "no:celery", "-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=1)


REDIS_TESTS = """
import pytest

BROKER, RESULTS, PREFIX = {broker!r}, {results!r}, {prefix!r}


@pytest.fixture(scope="session")
def celery_config():
    return {{
        "broker_url": BROKER,
        "result_backend": RESULTS,
        "broker_transport_options": {{"global_keyprefix": PREFIX}},
        "result_backend_transport_options": {{"global_keyprefix": PREFIX}},
    }}


def test_real_worker_on_redis(celery_app, celery_worker):
    @celery_app.task(bind=True, max_retries=2, acks_late=True)
    def flaky(self, x):
        if not self.request.retries:
            raise self.retry(countdown=0)
        return x * 2

    assert celery_app.connection().__class__.__name__ == "RedisTransport"
    assert flaky.delay(21).get(timeout=10) == 42
"""


def test_celery_worker_on_a_redis_broker(pytester: pytest.Pytester) -> None:
    """``celery_config`` moves the app (and its in-thread worker) to Redis."""
    import os

    from tests.integration.broker_envs import REDIS_WORKER_BROKER_DB, REDIS_WORKER_RESULTS_DB
    from tests.servers import delete_redis_keys, redis_namespace

    prefix = f"celeriac-plugin-{os.getpid()}:"
    broker = redis_namespace(REDIS_WORKER_BROKER_DB, prefix + "*")
    results = redis_namespace(REDIS_WORKER_RESULTS_DB, prefix + "*")
    pytester.makepyfile(test_plugin_redis=REDIS_TESTS.format(**locals()))
    try:
        result = pytester.runpytest_inprocess("-p", "no:celery", "-p", "no:cacheprovider", "-q")
        result.assert_outcomes(passed=1)
    finally:
        delete_redis_keys(REDIS_WORKER_BROKER_DB, prefix + "*")
        delete_redis_keys(REDIS_WORKER_RESULTS_DB, prefix + "*")
