"""The client side, at Celery's ``celery.app`` paths: the app (``base``), tasks, settings, routing.

Only :class:`Celery` and :func:`shared_task` are handed on here (``from celeriac.app import
Celery``); code inside celeriac imports from the module that defines a name.
"""

from celeriac.app.base import Celery, shared_task

__all__ = ["Celery", "shared_task"]
