"""celeriac's web monitor watching a real ``celery worker -E`` (Celery 5.7, Redis): Flower's
API answers with the shapes Flower gives for the same worker, and the controls are answered
by Celery's remote control."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from celeriac.web.monitor import Monitor
from celeriac.web.security import Access
from celeriac.web.server import create_app
from celeriac.web.store import TaskStore
from tests.integration.conftest import wait_until
from tests.interop.conftest import WorkerFactory
from tests.web_server import serving

pytestmark = [
    pytest.mark.interop,
    pytest.mark.slow,
    pytest.mark.parametrize("endpoint", ["redis"], indirect=True, scope="module"),
]
REFERENCE = json.loads((Path(__file__).parents[1] / "reference" / "flower_api.json").read_text())
NODE = "web-celery@interop"


@pytest.fixture
def monitored(celeriac_client: Any) -> Iterator[httpx.Client]:
    celeriac_client.conf.task_send_sent_event = True
    monitor = Monitor(celeriac_client, TaskStore(), inspect_timeout=3.0, flush_interval=0.05)
    monitor.start()
    try:
        with (
            serving(create_app(monitor, Access())) as url,
            httpx.Client(base_url=url, timeout=30) as client,
        ):
            yield client
    finally:
        monitor.stop()
        monitor.store.close()


def test_the_monitor_follows_a_celery_worker(
    monitored: httpx.Client,
    start_worker: WorkerFactory,
    celeriac_client: Any,
) -> None:
    client = monitored
    # The interop workers run --without-heartbeat: the monitor learns of this one from its
    # task events (and shows it offline: no heartbeat), then asks it the inspect questions.
    start_worker("celery", "-P", "threads", "-E", "-n", NODE)
    ok = celeriac_client.send_task("interop.add", (2, 3))
    bad = celeriac_client.send_task("interop.fail", ("boom 7",))

    def state_of(task_id: str) -> str | None:
        answer = client.get(f"/api/task/info/{task_id}")
        return answer.json()["state"] if answer.status_code == 200 else None

    wait_until(lambda: state_of(ok.id) == "SUCCESS", "the Celery task's success")
    wait_until(lambda: state_of(bad.id) == "FAILURE", "the Celery task's failure")
    success = client.get(f"/api/task/info/{ok.id}").json()
    assert set(success) == set(REFERENCE["api_task_info_success"]["json"])
    assert success["result"] == "5" and success["worker"] == NODE
    assert success["client"] and success["args"] == "(2, 3)"
    failure = client.get(f"/api/task/info/{bad.id}").json()
    assert "boom 7" in failure["exception"] and "Traceback" in failure["traceback"]
    result = client.get(f"/api/task/result/{ok.id}").json()
    assert result == {"task-id": ok.id, "state": "SUCCESS", "result": 5}

    assert client.get("/api/workers?status=1").json() == {NODE: False}
    info = client.get("/api/workers?refresh=1").json()[NODE]
    reference = REFERENCE["api_workers_refresh"]["json"]["fw1@vm"]
    assert set(reference) <= set(info)
    assert set(reference["stats"]) <= set(info["stats"])
    assert "interop.add" in info["registered"]

    limit = client.post(
        "/api/task/rate-limit/interop.add", data={"workername": NODE, "ratelimit": "20/m"}
    )
    assert limit.json() == REFERENCE["api_task_rate_limit"]["json"]
    grow = client.post(f"/api/worker/pool/grow/{NODE}", data={"n": "1"})
    assert grow.status_code in (200, 403)  # Celery's threads pool may refuse to grow
    text = client.get("/metrics").text
    assert (
        f'flower_events_total{{task="interop.add",type="task-succeeded",worker="{NODE}"}}' in text
    )
    assert NODE in client.get("/").text
