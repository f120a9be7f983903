"""The charts page's data and geometry: task events per second by type, runtimes per task
name (from the metrics' histogram), queue lengths over time. Kept in memory for the last
``WINDOW`` seconds (bounded), drawn as inline SVG by the template (no chart library)."""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass

from celeriac.web.metrics import BUCKETS, Metrics

#: Seconds of history the charts show.
WINDOW = 600
#: Seconds per point of the rate chart.
STEP = 10
#: The task events the rate chart draws, and their colours.
SERIES = {
    "task-received": "#7a8794",
    "task-started": "#3b6fb6",
    "task-succeeded": "#2e8b57",
    "task-failed": "#c0392b",
    "task-retried": "#d68910",
}
WIDTH = 720
HEIGHT = 180
PAD = 34


@dataclass(frozen=True, slots=True)
class Line:
    label: str
    colour: str
    points: str  # SVG polyline points
    last: float


@dataclass(frozen=True, slots=True)
class LineChart:
    lines: list[Line]
    top: float  # the y axis' maximum
    width: int = WIDTH
    height: int = HEIGHT
    pad: int = PAD


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    count: int
    x: int
    height: int


@dataclass(frozen=True, slots=True)
class Histogram:
    name: str
    bars: list[Bar]
    total: int
    mean: float


class Recorder:
    """Task events per second and queue-length samples, for the last :data:`WINDOW` s."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seconds: dict[int, Counter[str]] = {}
        self._newest = 0
        self._queues: deque[tuple[float, dict[str, int]]] = deque()

    def event(self, type_: str, at: float | None = None) -> None:
        if type_ not in SERIES:
            return
        second = int(at if at is not None else time.time())
        with self._lock:
            self._newest = max(self._newest, second)
            if second < self._newest - WINDOW:
                return  # older than anything the charts show
            self._seconds.setdefault(second, Counter())[type_] += 1
            if len(self._seconds) > WINDOW + 60:
                oldest = self._newest - WINDOW
                for key in [k for k in self._seconds if k < oldest]:
                    del self._seconds[key]

    def queues(self, lengths: dict[str, int], at: float | None = None) -> None:
        now = at if at is not None else time.time()
        with self._lock:
            self._queues.append((now, dict(lengths)))
            while self._queues and self._queues[0][0] < now - WINDOW:
                self._queues.popleft()

    def rates(self, now: float | None = None) -> LineChart:
        """Events per second by type, averaged over :data:`STEP`-second steps."""
        end = int(now if now is not None else time.time())
        steps = WINDOW // STEP
        values = {name: [0.0] * steps for name in SERIES}
        with self._lock:
            for second, counts in self._seconds.items():
                index = steps - 1 - (end - second) // STEP
                if 0 <= index < steps:
                    for name, n in counts.items():
                        values[name][index] += n / STEP
        return _lines(values, SERIES)

    def queue_lengths(self, now: float | None = None) -> LineChart:
        end = now if now is not None else time.time()
        with self._lock:
            samples = list(self._queues)
        names = sorted({name for _, lengths in samples for name in lengths})
        palette = ["#3b6fb6", "#2e8b57", "#c0392b", "#d68910", "#7d3c98", "#7a8794"]
        colours = {name: palette[i % len(palette)] for i, name in enumerate(names)}
        top = max([float(n) for _, lengths in samples for n in lengths.values()] + [1.0])
        lines = []
        for name in names:
            points = [
                (_x(WINDOW - (end - at), WINDOW), _y(float(lengths[name]), top))
                for at, lengths in samples
                if name in lengths
            ]
            last = float(samples[-1][1].get(name, 0)) if samples else 0.0
            text = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            lines.append(Line(name, colours[name], text, last))
        return LineChart(lines, top)


def runtimes(metrics: Metrics) -> list[Histogram]:
    """Per task name (all workers together): how many runs fell in each runtime bucket."""
    by_name: dict[str, tuple[list[int], int, float]] = {}
    for key, histogram in metrics.runtime_snapshot():
        name = dict(key).get("task", "")
        buckets, count, total = by_name.get(name, ([0] * len(BUCKETS), 0, 0.0))
        merged = [a + b for a, b in zip(buckets, histogram.buckets, strict=True)]
        by_name[name] = (merged, count + histogram.count, total + histogram.sum)
    charts = []
    for name, (cumulative, count, total) in sorted(by_name.items()):
        counts = [cumulative[0]] + [b - a for a, b in itertools.pairwise(cumulative)]
        counts.append(count - cumulative[-1])  # over the last bound
        names = [f"≤{bound:g}s" for bound in BUCKETS] + [f">{BUCKETS[-1]:g}s"]
        top = max([*counts, 1])
        bars = [
            Bar(label, n, PAD + index * 40, int((HEIGHT - 2 * PAD) * n / top))
            for index, (label, n) in enumerate(zip(names, counts, strict=True))
        ]
        charts.append(Histogram(name, bars, count, total / count if count else 0.0))
    return charts


def _lines(values: dict[str, list[float]], colours: dict[str, str]) -> LineChart:
    top = max([v for series in values.values() for v in series] + [1.0])
    lines = []
    for name, series in values.items():
        steps = len(series)
        points = " ".join(f"{_x(i, steps - 1):.1f},{_y(v, top):.1f}" for i, v in enumerate(series))
        lines.append(Line(name, colours[name], points, series[-1] if series else 0.0))
    return LineChart(lines, top)


def _x(position: float, span: float) -> float:
    return PAD + (WIDTH - 2 * PAD) * max(0.0, min(1.0, position / span if span else 1.0))


def _y(value: float, top: float) -> float:
    return HEIGHT - PAD - (HEIGHT - 2 * PAD) * (value / top if top else 0.0)


__all__ = ["SERIES", "STEP", "WINDOW", "Histogram", "LineChart", "Recorder", "runtimes"]
