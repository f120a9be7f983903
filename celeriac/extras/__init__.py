"""Beyond Celery: unique tasks, dead letters and the cluster store.

Importing this package (``celeriac`` does) gives every app created afterwards the extras'
hooks: :class:`~celeriac.extras.unique.UniqueTasks` (a send hook),
:class:`~celeriac.extras.deadletter.DeadLetters` and
:class:`~celeriac.extras.cluster_store.ClusterStoreHook` (the store behind cluster rate limits
and lasting revokes); each acts only when its option or setting asks. Nothing below imports
this package: the extras only add.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from celeriac.app.hooks import register_provider
from celeriac.extras.cluster_store import ClusterStoreHook
from celeriac.extras.deadletter import DeadLetters
from celeriac.extras.unique import UniqueTasks

if TYPE_CHECKING:
    from celeriac.app.base import Celery
    from celeriac.execution.hooks import Hook


def extra_hooks(app: Celery) -> list[Hook]:
    """The extras' hooks for a new app."""
    return [UniqueTasks(), DeadLetters(), ClusterStoreHook()]


register_provider(extra_hooks)

__all__ = ["extra_hooks"]
