"""The cluster store seam: state every worker of a cluster shares (beyond Celery).

A :class:`ClusterStore` holds token buckets for cluster-wide rate limits
(``rate_limit_scope='cluster'``) and revoked task ids with a time to live. The core states the
contract and asks the app's hooks for a store; the implementations (SQLite, Redis, memory)
live in :mod:`celeriac.extras.cluster_store`, whose hook ``ClusterStoreHook`` plugs them
in. An app without such a hook has no cluster store: rate limits are then per worker and
revokes reach only the workers that are up, as in Celery.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from celeriac.app.base import Celery


class ClusterStore(ABC):
    """The seam: a few atomic operations every worker and client may call concurrently."""

    @abstractmethod
    def acquire(self, key: str, rate: float, capacity: float = 1.0) -> float:
        """Take one token from bucket ``key`` (``rate`` tokens/s): 0.0, or seconds to wait."""

    @abstractmethod
    def add_revoked(self, task_ids: Iterable[str], ttl: float) -> None:
        """Remember ``task_ids`` as revoked for ``ttl`` seconds."""

    @abstractmethod
    def revoked(self) -> dict[str, float]:
        """Revoked ids still alive, with the Unix time each was revoked."""

    def close(self) -> None:  # noqa: B027 - optional
        """Release connections."""


@runtime_checkable
class ProvidesClusterStore(Protocol):
    """A capability of an app hook: it gives the app's workers and clients a cluster store."""

    def cluster_store(self, app: Celery) -> ClusterStore | None:
        """A new store for ``app`` (the caller closes it), or None when there is none."""
        ...


def cluster_store_for(app: Celery) -> ClusterStore | None:
    """The store of the first app hook that provides one, else None."""
    for hook in app.hooks:
        if isinstance(hook, ProvidesClusterStore):
            return hook.cluster_store(app)
    return None


__all__ = ["ClusterStore", "ProvidesClusterStore", "cluster_store_for"]
