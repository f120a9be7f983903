"""The beat lease (beyond Celery): one beat sends, any other is a standby.

A beat sends only while it holds the lease, a record with an owner and an expiry kept in the
broker (the embedded SQLite file, Redis, PostgreSQL, or memory://). It renews the lease well
within its time to live; a beat that finds the lease held waits as a standby and takes over
once the holder stops renewing it (stopped, or killed with kill -9): within ``beat_lease_ttl``
plus one renewal interval. The state file is opened only while the lease is held.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from celeriac.app.base import Celery


class BeatLease(ABC):
    """One named lease. ``acquire`` takes it when free or expired, and renews it for its
    owner; it is atomic: of two beats asking at once, one gets it."""

    def __init__(self, name: str) -> None:
        self.name = name

    @abstractmethod
    def acquire(self, owner: str, ttl: float) -> bool:
        """Take or renew the lease for ``ttl`` seconds; False when another owner holds it."""

    @abstractmethod
    def release(self, owner: str) -> None:
        """Give the lease up if ``owner`` holds it (a standby takes over at once)."""

    @abstractmethod
    def holder(self) -> str | None:
        """The owner holding an unexpired lease, if any."""

    @abstractmethod
    def close(self) -> None:
        """Free the lease's connections."""


def lease_name(app: Celery) -> str:
    """Beats of one project share a lease; different projects on one broker do not."""
    return app.main or "default"


__all__ = ["BeatLease", "lease_name"]
