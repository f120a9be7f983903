"""A worker frozen (SIGSTOP) past its leases, on the embedded SQLite default and on Redis: when
it wakes it must not run the messages it had prefetched that went back to the broker and ran
elsewhere (``ConfirmsLeases``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.faults import scenarios

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.mark.parametrize("broker", ["sqlite", "redis"])
def test_a_woken_worker_drops_prefetched_messages_it_no_longer_holds(
    tmp_path: Path, broker: str
) -> None:
    frozen = scenarios.freeze(broker, 60, tmp_path, lease=1.0)
    print(frozen.row())
    assert frozen.lost == 0
    assert frozen.extra["after_wake"] == 0, frozen.notes  # none re-run after waking
    # (Whether the woken worker logs "dropped unrun" depends on whether it still had a
    # message waiting when it was frozen, not only a running one: not asserted.)
