"""pytest fixtures with Celery's names (``celery.contrib.pytest``), on a real in-thread worker.

Enable them in a ``conftest.py`` with ``pytest_plugins = ["celeriac.testing"]``. The app uses a
private in-memory broker and result store unless ``celery_config`` says otherwise (for example
``{"broker_url": "sqlite:///...", "result_backend": "db+sqlite:///..."}``).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from celeriac.app.base import Celery
from celeriac.testing.worker import start_worker

if TYPE_CHECKING:
    from celeriac.worker.worker import Worker

_names = itertools.count()


@pytest.fixture(scope="session")
def celery_config() -> Mapping[str, Any]:
    """Override to configure the test app (settings by their lowercase names)."""
    return {}


@pytest.fixture(scope="session")
def celery_includes() -> Sequence[str]:
    """Override with modules the worker imports (``include=``)."""
    return ()


@pytest.fixture(scope="session")
def celery_parameters() -> Mapping[str, Any]:
    """Override with extra ``Celery(...)`` arguments."""
    return {}


@pytest.fixture(scope="session")
def celery_worker_parameters() -> Mapping[str, Any]:
    """Override with extra ``Worker(...)`` arguments (``pool``, ``concurrency``, ``queues``)."""
    return {}


@pytest.fixture(scope="session")
def celery_enable_logging() -> bool:
    """Override with True to let the worker configure logging (as ``-l`` would)."""
    return False


@pytest.fixture
def celery_app(
    celery_config: Mapping[str, Any],
    celery_includes: Sequence[str],
    celery_parameters: Mapping[str, Any],
    celery_enable_logging: bool,
) -> Iterator[Celery]:
    """A fresh app; its broker and result store are private to this test by default."""
    name = f"celeriac-test-{os.getpid()}-{next(_names)}"
    settings: dict[str, Any] = {
        "broker_url": f"memory://{name}",
        "result_backend": f"cache+memory://{name}",
        "worker_hijack_root_logger": celery_enable_logging,
    }
    settings.update(celery_config)
    params = dict(celery_parameters)
    app = Celery(params.pop("main", "celery.tests"), include=list(celery_includes), **params)
    app.conf.update(settings)
    try:
        yield app
    finally:
        app.close()


@pytest.fixture
def celery_worker(
    celery_app: Celery,
    celery_worker_parameters: Mapping[str, Any],
) -> Iterator[Worker]:
    """A real worker for ``celery_app`` running in a thread for the duration of the test."""
    params: dict[str, Any] = {"pool": "solo", "concurrency": 1}
    params.update(celery_worker_parameters)
    with start_worker(celery_app, **params) as worker:
        yield worker


__all__ = [
    "celery_app",
    "celery_config",
    "celery_enable_logging",
    "celery_includes",
    "celery_parameters",
    "celery_worker",
    "celery_worker_parameters",
]
