"""The ``UniqueClaims`` capability: a key claimed atomically, with an expiry (unique tasks)."""

from __future__ import annotations

import threading
import time

import pytest

from celeriac.backends.capabilities import UniqueClaims
from tests.conformance.backend_kinds import Store, backend, kind_ids, kinds_where, store

__all__ = ["backend", "store"]  # the fixtures are used by name below

CLAIMERS = kinds_where(lambda cls: issubclass(cls, UniqueClaims))
on_claimers = pytest.mark.parametrize("store", CLAIMERS, indirect=True)


def test_the_stores_that_claim_it() -> None:
    assert kind_ids(CLAIMERS) == {"memory", "sqlite", "redis", "redis-plain"}


def _claimer(store: Store) -> UniqueClaims:
    backend = store.connect()
    assert isinstance(backend, UniqueClaims)
    return backend


@on_claimers
def test_claim_is_exclusive_until_it_expires(store: Store) -> None:
    backend = _claimer(store)
    assert backend.claim_unique("k", "a", 30) == "a"
    assert backend.claim_unique("k", "b", 30) == "a"
    assert backend.claim_unique("other", "c", 30) == "c"
    assert backend.claim_unique("short", "a", 0.0) == "a"  # expires at once
    time.sleep(0.01)  # Redis rounds a claim up to its shortest expiry, 1 ms
    assert backend.claim_unique("short", "b", 30) == "b"


@on_claimers
def test_concurrent_claims_agree_on_one_owner(store: Store) -> None:
    backend = _claimer(store)
    owners: list[str] = []

    def claim(i: int) -> None:
        owners.append(backend.claim_unique("race", f"id{i}", 30))

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(owners)) == 1
