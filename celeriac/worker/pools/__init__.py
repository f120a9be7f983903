"""Execution pools by name (the ``-P`` option): a literal table, no import strings."""

from __future__ import annotations

from celeriac.worker.pools.asyncio import AsyncioPool
from celeriac.worker.pools.base import Job, JobResult, Pool
from celeriac.worker.pools.prefork.pool import PreforkPool
from celeriac.worker.pools.solo import SoloPool
from celeriac.worker.pools.threads import ThreadsPool

POOLS: dict[str, type[Pool]] = {
    "prefork": PreforkPool,
    "processes": PreforkPool,
    "threads": ThreadsPool,
    "solo": SoloPool,
    "asyncio": AsyncioPool,
}


def pool_class(name: str) -> type[Pool]:
    """The class for ``-P name``; a clear error listing the choices otherwise."""
    try:
        return POOLS[name]
    except KeyError:
        choices = ", ".join(sorted(POOLS))
        raise ValueError(f"unknown pool {name!r}: choose one of {choices}") from None


__all__ = ["POOLS", "Job", "JobResult", "Pool", "pool_class"]
