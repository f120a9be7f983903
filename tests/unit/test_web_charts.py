"""The charts' data: events per second by type, queue lengths over time, runtimes per task."""

from __future__ import annotations

from celeriac.web.charts import HEIGHT, PAD, STEP, WINDOW, Recorder, runtimes
from celeriac.web.metrics import Metrics


def test_rates_average_each_step_and_forget_what_is_older_than_the_window() -> None:
    recorder = Recorder()
    now = 10_000.0
    for _ in range(20):
        recorder.event("task-succeeded", now - 1)  # 20 in the last step: 2 per second
    recorder.event("task-failed", now - WINDOW - 50)  # too old
    recorder.event("task-retried", now - 100)  # late, out of order: still in its own step
    recorder.event("worker-heartbeat", now)  # not a task event: ignored
    chart = recorder.rates(now=now)
    lines = {line.label: line for line in chart.lines}
    assert lines["task-succeeded"].last == 20 / STEP
    assert chart.top == 20 / STEP
    assert lines["task-failed"].last == 0.0
    assert lines["task-retried"].last == 0.0 and "140.4" not in lines["task-failed"].points
    assert {float(p.split(",")[1]) for p in lines["task-retried"].points.split()} != {HEIGHT - PAD}
    last_point = lines["task-succeeded"].points.split()[-1]
    assert float(last_point.split(",")[1]) == PAD  # the top of the plot


def test_queue_lengths_draw_one_line_per_queue() -> None:
    recorder = Recorder()
    recorder.queues({"celery": 4, "mail": 0}, at=100.0)
    recorder.queues({"celery": 8, "mail": 2}, at=105.0)
    chart = recorder.queue_lengths(now=106.0)
    assert [(line.label, line.last) for line in chart.lines] == [("celery", 8.0), ("mail", 2.0)]
    assert chart.top == 8.0 and len(chart.lines[0].points.split()) == 2


def test_runtimes_per_task_name_across_workers() -> None:
    metrics = Metrics()
    for worker, runtime in (("w1", 0.003), ("w2", 0.003), ("w1", 0.2), ("w2", 30.0)):
        metrics.observe(
            {"type": "task-succeeded", "hostname": worker, "name": "t.add", "runtime": runtime},
            None,
        )
    [histogram] = runtimes(metrics)
    assert histogram.name == "t.add" and histogram.total == 4
    counts = {bar.label: bar.count for bar in histogram.bars}
    assert counts["≤0.005s"] == 2 and counts["≤0.25s"] == 1 and counts[">10s"] == 1
    assert sum(counts.values()) == 4
    tallest = max(histogram.bars, key=lambda bar: bar.count)
    assert tallest.height == HEIGHT - 2 * PAD
