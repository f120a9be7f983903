"""The prefixes a key watch asks the server for (it refuses overlapping ones)."""

from __future__ import annotations

from celeriac.drivers.redis.tracking import prefixes_of


def test_a_queue_covers_its_priority_lists_and_longer_names() -> None:
    keys = ["celery", "celery\x06\x163", "celery\x06\x169", "celeryx", "bulk", "bulk\x06\x163"]
    assert prefixes_of(keys) == ("bulk", "celery")


def test_separate_names_stay_separate() -> None:
    assert prefixes_of(["p:b", "p:a", "p:a"]) == ("p:a", "p:b")
