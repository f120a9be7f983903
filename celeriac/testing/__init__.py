"""Testing helpers: a real in-thread worker and pytest fixtures with Celery's names.

``pytest_plugins = ["celeriac.testing"]`` in a ``conftest.py`` enables ``celery_app``,
``celery_worker``, ``celery_config``, ``celery_includes``, ``celery_parameters``,
``celery_worker_parameters`` and ``celery_enable_logging``. Outside pytest, use
:func:`start_worker` as a context manager.
"""

from __future__ import annotations

from celeriac.testing.fixtures import (
    celery_app,
    celery_config,
    celery_enable_logging,
    celery_includes,
    celery_parameters,
    celery_worker,
    celery_worker_parameters,
)
from celeriac.testing.worker import start_worker

__all__ = [
    "celery_app",
    "celery_config",
    "celery_enable_logging",
    "celery_includes",
    "celery_parameters",
    "celery_worker",
    "celery_worker_parameters",
    "start_worker",
]
