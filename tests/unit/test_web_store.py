"""The monitor's task history (SQLite) and its metrics, fed with events by hand."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery
from celeriac.web import deadletters, schedules
from celeriac.web.documents import TASK_FIELDS, flower_document
from celeriac.web.monitor import Monitor, masked
from celeriac.web.store import StoredTask, TaskQuery, TaskStore

REFERENCE_METRICS = Path(__file__).parents[1] / "reference" / "flower_metrics.txt"


def doc(uuid: str, timestamp: float, **fields: Any) -> StoredTask:
    base: dict[str, Any] = dict.fromkeys(TASK_FIELDS)
    base.update(uuid=uuid, timestamp=timestamp, state="SUCCESS", name="t.add", children=[])
    base.update(fields)
    return StoredTask(base, [("RECEIVED", timestamp - 1), ("SUCCESS", timestamp)])


def task_events(uuid: str, t: float, name: str = "t.add", **extra: Any) -> list[dict[str, Any]]:
    common = {"uuid": uuid, "hostname": "w1@h", "clock": 1, "local_received": t}
    return [
        {"type": "task-received", "timestamp": t, "name": name, "args": "(1, 2)", "kwargs": "{}",
         "retries": 0, "eta": None, "expires": None, **extra, **common},
        {"type": "task-started", "timestamp": t + 0.1, **common},
        {"type": "task-succeeded", "timestamp": t + 0.2, "result": "3", "runtime": 0.1, **common},
    ]  # fmt: skip


def test_the_history_is_bounded_and_drops_the_oldest() -> None:
    store = TaskStore(":memory:", max_tasks=3)
    store.put([doc(f"id-{n}", 100.0 + n) for n in range(5)])
    assert len(store) == 3
    total, page = store.query(TaskQuery())
    assert total == 3 and [t.doc["uuid"] for t in page] == ["id-4", "id-3", "id-2"]
    store.put([doc("id-4", 200.0, state="FAILURE")])  # an update does not count twice
    assert len(store) == 3 and store.get("id-4").doc["state"] == "FAILURE"  # type: ignore[union-attr]


def test_filters_search_pages_and_children() -> None:
    store = TaskStore()
    store.put(
        [
            doc("root-1", 10.0, name="t.a", worker="w1", args="(1, 'needle')"),
            doc("kid-1", 11.0, name="t.b", worker="w2", parent_id="root-1", root_id="root-1"),
            doc("kid-2", 12.0, name="t.b", worker="w2", parent_id="root-1", state="FAILURE"),
        ]
    )
    assert store.get("root-1").doc["children"] == ["kid-1", "kid-2"]  # type: ignore[union-attr]
    assert store.query(TaskQuery(state="FAILURE"))[0] == 1
    assert store.query(TaskQuery(worker="w2"))[0] == 2
    assert [t.doc["uuid"] for t in store.query(TaskQuery(search="needle"))[1]] == ["root-1"]
    assert [t.doc["uuid"] for t in store.query(TaskQuery(search="kid-"))[1]] == ["kid-2", "kid-1"]
    assert store.query(TaskQuery(search="100%"))[0] == 0  # LIKE wildcards are literal
    total, page = store.query(TaskQuery(sort_by="timestamp", limit=1, offset=1))
    assert total == 3 and page[0].doc["uuid"] == "kid-1"
    assert store.query(TaskQuery(since=11.0, until=12.0))[0] == 2  # both ends, as Flower
    assert store.query(TaskQuery(since=11.5, until=11.9))[0] == 0
    assert [t.doc["uuid"] for t in store.family("root-1")] == ["root-1", "kid-1"]
    with pytest.raises(ValueError, match="cannot sort tasks by 'args'"):
        TaskQuery(sort_by="args")


def test_history_survives_a_monitor_restart_and_late_events_add_to_it(tmp_path: Path) -> None:
    path = str(tmp_path / "history.sqlite")
    app = Celery("t", broker="memory://web-restart")
    first = Monitor(app, TaskStore(path))
    events = task_events("abc", 1000.0)
    for event in events[:2]:  # received and started, then the monitor stops
        first.on_event(event)
    first.flush()
    first.store.close()
    second = Monitor(app, TaskStore(path))
    stored = second.task("abc")
    assert stored is not None and stored.doc["state"] == "STARTED"
    second.on_event(events[2])  # succeeded, seen by the new monitor only
    done = second.task("abc")
    assert done is not None
    assert done.doc["state"] == "SUCCESS" and done.doc["args"] == "(1, 2)"
    assert done.doc["name"] == "t.add" and done.doc["worker"] == "w1@h"
    assert [s for s, _ in done.history] == ["RECEIVED", "STARTED", "SUCCESS"]
    second.store.close()
    app.close()


def test_memory_stays_bounded_while_the_history_keeps_everything() -> None:
    app = Celery("t", broker="memory://web-bounded")
    monitor = Monitor(app, TaskStore(max_tasks=1000), max_tasks_in_memory=50)
    for n in range(400):
        for event in task_events(f"id-{n}", 1000.0 + n):
            monitor.on_event(event)
        if n % 100 == 0:
            monitor.flush()
    assert len(monitor.state.tasks) == 50
    total, _ = monitor.tasks(TaskQuery(limit=1))
    assert total == 400
    assert monitor.task("id-0").doc["state"] == "SUCCESS"  # type: ignore[union-attr]
    app.close()


def test_metrics_carry_flowers_names_and_labels() -> None:
    app = Celery("t", broker="memory://web-metrics")
    monitor = Monitor(app, TaskStore())
    monitor.on_event({"type": "worker-online", "hostname": "w1@h", "timestamp": 1.0,
                      "local_received": 1.0, "active": 0, "freq": 2.0})  # fmt: skip
    for event in task_events("m1", 1000.0):
        monitor.on_event(event)
    text = monitor.metrics.render()
    reference = REFERENCE_METRICS.read_text()
    families = {
        line.split()[2]
        for line in reference.splitlines()
        if line.startswith("# TYPE flower_") and not line.split()[2].endswith("_created")
    }
    for family in families:
        assert f"# TYPE {family} " in text, family
    assert 'flower_events_total{task="t.add",type="task-succeeded",worker="w1@h"} 1.0' in text
    assert 'flower_task_runtime_seconds_bucket{le="0.1",task="t.add",worker="w1@h"} 1' in text
    assert 'flower_task_runtime_seconds_bucket{le="+Inf",task="t.add",worker="w1@h"} 1' in text
    assert 'flower_worker_online{worker="w1@h"} 1.0' in text
    assert 'flower_worker_prefetched_tasks{task="t.add",worker="w1@h"} 0.0' in text
    app.close()


def test_inspect_answers_never_show_passwords() -> None:
    answer = {
        "broker_url": "redis://:s3cret@host:6379/0",
        "nested": [{"result_backend": "db+postgresql://u:pw@db/x"}],
        "broker_password": "hunter2",
    }
    shown = str(masked(answer))
    assert "s3cret" not in shown and "pw@" not in shown and "hunter2" not in shown


def test_state_counts_follow_updates_and_trimming() -> None:
    store = TaskStore(max_tasks=3)
    store.put([doc("a", 1.0, state="STARTED"), doc("b", 2.0, state="STARTED")])
    assert store.counts_by_state() == {"STARTED": 2}
    store.put([doc("a", 3.0, state="SUCCESS")])
    assert store.counts_by_state() == {"STARTED": 1, "SUCCESS": 1}
    store.put([doc("c", 4.0, state="FAILURE"), doc("d", 5.0, state="FAILURE")])  # b goes
    assert store.counts_by_state() == {"SUCCESS": 1, "FAILURE": 2}


def test_search_finds_text_in_arguments_after_updates_and_short_words() -> None:
    store = TaskStore()
    store.put([doc("t1", 1.0, args="(1, 'Invoice-42')", kwargs="{'to': 'ann'}")])
    store.put([doc("t2", 2.0, args="(2, 'receipt-7')")])
    assert [t.doc["uuid"] for t in store.query(TaskQuery(search="invoice"))[1]] == ["t1"]
    assert [t.doc["uuid"] for t in store.query(TaskQuery(search="'ann'"))[1]] == ["t1"]
    assert [t.doc["uuid"] for t in store.query(TaskQuery(search="-7"))[1]] == ["t2"]
    store.put([doc("t1", 3.0, args="(1, 'credit-note')")])  # the arguments changed
    assert store.query(TaskQuery(search="invoice"))[0] == 0
    assert [t.doc["uuid"] for t in store.query(TaskQuery(search="credit"))[1]] == ["t1"]
    assert store.query(TaskQuery(search='say "hi"'))[0] == 0  # quotes are literal


def test_a_history_file_of_another_layout_is_refused_naming_db(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version=99")
    with pytest.raises(ValueError, match="give another file with --db"):
        TaskStore(str(path))


def test_without_a_schedule_store_or_dead_letters_the_pages_say_what_to_set() -> None:
    app = Celery("t", broker="memory://web-off")
    assert schedules.rows(app) is None
    status, message = schedules.act(app, "pause", "x")
    assert status == 409 and "beat_schedule_store" in message
    assert deadletters.dead_queues(app) == []
    assert "task_dead_letter_queue" in deadletters.NOT_ON
    app.close()


def test_only_workers_that_may_answer_are_asked() -> None:
    app = Celery("t", broker="memory://web-reach")
    monitor = Monitor(app, TaskStore())
    now = time.time()
    beat = {"freq": 2.0, "timestamp": now, "active": 0}
    monitor.on_event({"type": "worker-online", "hostname": "up@h", "local_received": now, **beat})
    monitor.on_event({"type": "worker-online", "hostname": "left@h", "local_received": now, **beat})
    monitor.on_event(
        {"type": "worker-offline", "hostname": "left@h", "local_received": now, **beat}
    )
    old = now - 3600
    monitor.on_event({"type": "worker-heartbeat", "hostname": "dead@h", "local_received": old,
                      **beat})  # fmt: skip
    for event in task_events("quiet-task", now):  # --without-heartbeat: only task events
        monitor.on_event(dict(event, hostname="quiet@h"))
    assert monitor.reachable() == ["quiet@h", "up@h"]
    app.close()


def test_a_workflow_gathers_a_client_sent_chord_by_its_group() -> None:
    store = TaskStore()
    store.put([
        doc("h1", 1.0, root_id="h1", group="g", group_index=0),
        doc("h2", 2.0, root_id="h2", group="g", group_index=1),
        doc("body", 3.0, root_id="h2", parent_id="h2", group="g"),
        doc("next", 4.0, root_id="h2", parent_id="body"),
        doc("other", 5.0, root_id="other", group="g2", group_index=0),
    ])  # fmt: skip
    for start in ("h1", "h2"):
        assert [t.doc["uuid"] for t in store.family(start)] == ["h1", "h2", "body", "next"]
    assert [t.doc["uuid"] for t in store.family("other")] == ["other"]


def test_the_group_fields_reach_the_workflow_but_not_flowers_documents() -> None:
    app = Celery("t", broker="memory://web-group")
    monitor = Monitor(app, TaskStore())
    # a late task-received (after the task started): Celery's model keeps only its fields
    events = task_events("m1", 10.0, group="g", group_index=0)
    for event in (events[1], events[0], events[2]):
        monitor.on_event(event)
    for event in task_events("plain", 11.0):  # a Celery worker's: no group
        monitor.on_event(event)
    stored = monitor.task("m1")
    assert stored is not None and stored.doc["group"] == "g" and stored.doc["group_index"] == 0
    assert "group" not in monitor.task("plain").doc  # type: ignore[union-attr]
    assert set(flower_document(stored.doc)) == set(TASK_FIELDS)
    monitor.store.close()
    app.close()


def search_segments(store: TaskStore) -> int:
    return int(store._db.execute("SELECT count(*) FROM task_text_data").fetchone()[0])


def test_a_full_history_keeps_its_search_index_compact() -> None:
    # Trimming leaves delete markers in the trigram index that every search reads past;
    # once half the history has been trimmed, the index is merged again.
    merged, kept = TaskStore(max_tasks=200), TaskStore(max_tasks=200, rebuild_after=10**9)
    assert merged.rebuild_after == 1000  # at least 1,000; half of max_tasks above that
    for store in (merged, kept):
        for start in range(0, 1200, 50):  # 1,000 trimmed by the last put
            store.put(
                [doc(f"id-{n:05d}", 1000.0 + n, args=f"({n}, 'order-{n}')")
                 for n in range(start, start + 50)]
            )  # fmt: skip
        assert len(store) == 200
        found = store.query(TaskQuery(search="order-1150'"))[1]
        assert [t.doc["uuid"] for t in found] == ["id-01150"]
        assert store.query(TaskQuery(search="order-10'"))[0] == 0  # trimmed long ago
    assert merged._trimmed == 0 and kept._trimmed == 1000
    assert search_segments(merged) * 2 < search_segments(kept)
