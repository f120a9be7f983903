"""Tasks every app has, named as Celery names them (a Celery beat schedule can send them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from celeriac.app.base import Celery

BACKEND_CLEANUP = "celery.backend_cleanup"


def add_builtin_tasks(app: Celery) -> None:
    """Register ``celery.backend_cleanup`` on ``app``."""

    def backend_cleanup() -> int:
        """Delete results older than ``result_expires``; return how many were removed."""
        return app.backend.cleanup()

    # The result of a clean-up is not worth a row in the store it is cleaning.
    app.task(name=BACKEND_CLEANUP, ignore_result=True)(backend_cleanup)


__all__ = ["BACKEND_CLEANUP", "add_builtin_tasks"]
