"""``get_task_logger`` and ``get_logger`` at Celery's import path."""

from celeriac.log import get_logger, get_task_logger

__all__ = ["get_logger", "get_task_logger"]
