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
