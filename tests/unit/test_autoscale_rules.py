"""The autoscaler's rules (Celery's ``celery/worker/autoscale.py``) on a pool that counts."""

from __future__ import annotations

import pytest

from celeriac import Celery
from celeriac.worker.autoscale import Autoscaler, parse_autoscale
from celeriac.worker.pools.base import BasePool


class CountingPool(BasePool):
    name = "counting"

    def start(self) -> None:
        pass

    def shutdown(self, grace: float | None = None) -> None:
        pass

    def grow(self, n: int = 1) -> None:
        self.concurrency += n

    def shrink(self, n: int = 1) -> None:
        self.concurrency -= min(n, self.concurrency - 1)


@pytest.fixture
def pool() -> CountingPool:
    return CountingPool(Celery("scale", broker="memory://scale"), 1, hostname="h")


@pytest.mark.parametrize(
    ("text", "expected"), [("10,3", (10, 3)), ("3,10", (10, 3)), ("4", (4, 0)), (" 6 , 2 ", (6, 2))]
)
def test_parse_autoscale(text: str, expected: tuple[int, int]) -> None:
    assert parse_autoscale(text) == expected


@pytest.mark.parametrize("text", ["", "a,b", "1,2,3", "0", "-1,2"])
def test_parse_autoscale_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="--autoscale"):
        parse_autoscale(text)


def test_grows_with_load_up_to_max_and_shrinks_after_keepalive(pool: CountingPool) -> None:
    load = [0]
    scaler = Autoscaler(pool, 4, 1, lambda: load[0], keepalive=30.0)
    assert not scaler.maybe_scale() and pool.size == 1
    load[0] = 3
    assert scaler.maybe_scale() and pool.size == 3
    load[0] = 9
    assert scaler.maybe_scale() and pool.size == 4  # never past max
    assert scaler.info() == {"max": 4, "min": 1, "current": 4, "qty": 9}
    load[0] = 0
    assert not scaler.maybe_scale() and pool.size == 4  # within keepalive: stays
    scaler._last_active = 0.0  # keepalive long past
    assert scaler.maybe_scale() and pool.size == 1  # down to min
    scaler.update(min=2)
    assert pool.size == 2
    assert scaler.update(max=1) == (1, 2) and pool.size == 1


def test_never_shrinks_below_the_load(pool: CountingPool) -> None:
    load = [5]
    scaler = Autoscaler(pool, 6, 0, lambda: load[0], keepalive=30.0)
    scaler.maybe_scale()
    assert pool.size == 5
    load[0] = 2
    scaler._last_active = 0.0
    scaler.maybe_scale()
    assert pool.size == 5  # there was work just now: keepalive again
    scaler._last_active = 0.0
    load[0] = 0
    scaler.maybe_scale()
    assert pool.size == 1  # min 0, but a pool keeps one slot


def test_keepalive_must_be_positive(pool: CountingPool) -> None:
    with pytest.raises(ValueError, match="cannot scale down too fast"):
        Autoscaler(pool, 2, 1, lambda: 0, keepalive=0)
