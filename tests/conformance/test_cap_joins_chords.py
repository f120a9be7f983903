"""The ``JoinsChords`` capability: the store counts a chord's header and hands the complete
header to exactly one worker (a retried or redelivered header task counts once)."""

from __future__ import annotations

import threading

import pytest

from celeriac import states
from celeriac.backends.capabilities import ChordParts, JoinsChords
from tests.conformance.backend_kinds import Store, backend, kind_ids, kinds_where, store

__all__ = ["backend", "store"]  # the fixtures are used by name below

JOINERS = kinds_where(lambda cls: issubclass(cls, JoinsChords))
on_joiners = pytest.mark.parametrize("store", JOINERS, indirect=True)


def test_the_stores_that_claim_it() -> None:
    assert kind_ids(JOINERS) == {
        "memory",
        "sqlite",
        "db+postgresql",
        "db+mysql+pymysql",
        "redis",
        "redis-plain",
    }


def _joiner(store: Store) -> JoinsChords:
    backend = store.connect()
    assert isinstance(backend, JoinsChords)
    return backend


@on_joiners
def test_the_last_part_gets_every_result_in_group_order(store: Store) -> None:
    backend = _joiner(store)
    backend.set_chord_size("g1", 3)
    assert backend.chord_part_return("g1", "t2", 2, states.SUCCESS, {"v": 2}) is None
    assert backend.chord_part_return("g1", "t0", 0, states.SUCCESS, [0]) is None
    parts = backend.chord_part_return("g1", "t1", 1, states.FAILURE, ValueError("bad"))
    assert isinstance(parts, ChordParts) and parts.group_id == "g1"
    assert [(tid, state) for tid, state, _ in parts.results] == [
        ("t0", states.SUCCESS),
        ("t1", states.FAILURE),
        ("t2", states.SUCCESS),
    ]
    assert parts.results[0][2] == [0] and parts.results[2][2] == {"v": 2}
    error = parts.results[1][2]
    assert isinstance(error, ValueError) and str(error) == "bad"
    backend.chord_done(parts)
    # a late copy of a header task (redelivered after the body went out) does nothing
    assert backend.chord_part_return("g1", "t1", 1, states.SUCCESS, 1) is None


@on_joiners
def test_a_part_reported_twice_counts_once(store: Store) -> None:
    backend = _joiner(store)
    backend.set_chord_size("g2", 2)
    assert backend.chord_part_return("g2", "a", 0, states.SUCCESS, 1) is None
    assert backend.chord_part_return("g2", "a", 0, states.SUCCESS, 1) is None  # retried
    parts = backend.chord_part_return("g2", "b", 1, states.SUCCESS, 2)
    assert parts is not None and [v for _, _, v in parts.results] == [1, 2]
    # the claim is held: a redelivered part does not hand the chord out again
    assert backend.chord_part_return("g2", "b", 1, states.SUCCESS, 2) is None


@on_joiners
def test_concurrent_parts_complete_the_chord_once(store: Store) -> None:
    backend = _joiner(store)
    backend.set_chord_size("g3", 8)
    winners: list[ChordParts] = []

    def report(i: int) -> None:
        parts = backend.chord_part_return("g3", f"t{i}", i, states.SUCCESS, i)
        if parts is not None:
            winners.append(parts)

    threads = [threading.Thread(target=report, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1
    assert [v for _, _, v in winners[0].results] == list(range(8))


@on_joiners
def test_setting_the_size_again_starts_over(store: Store) -> None:
    backend = _joiner(store)
    backend.set_chord_size("g4", 1)
    first = backend.chord_part_return("g4", "x", 0, states.SUCCESS, "one")
    assert first is not None
    backend.chord_done(first)
    backend.set_chord_size("g4", 1)  # a frozen chord sent again: a new run
    again = backend.chord_part_return("g4", "x", 0, states.SUCCESS, "two")
    assert again is not None and again.results[0][2] == "two"


@on_joiners
def test_a_task_added_to_the_chord_is_waited_for(store: Store) -> None:
    backend = _joiner(store)
    backend.set_chord_size("g5", 2)
    assert backend.chord_part_return("g5", "a", 0, states.SUCCESS, "a") is None
    backend.add_to_chord("g5")  # header task b adds c (same group index) before it ends
    assert backend.chord_part_return("g5", "b", 1, states.SUCCESS, "b") is None
    parts = backend.chord_part_return("g5", "c", 1, states.SUCCESS, "c")
    assert parts is not None
    assert sorted(v for _, _, v in parts.results) == ["a", "b", "c"]
