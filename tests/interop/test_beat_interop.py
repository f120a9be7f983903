"""Beat across the two packages on Redis: a real Celery 5.7 worker runs what ``celeriac beat``
sends, and a celeriac worker runs what ``celery beat`` sends (the same project, once per
package), each seeing Celery 5.7's ``celery_beat_task`` header."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import wait_until
from tests.servers import REDIS_INTEROP_DB, delete_redis_keys, redis_url, require_redis

REPO = Path(__file__).resolve().parents[2]

PROJECT = """
import json
import os

from {package} import Celery

app = Celery("beatinterop")
app.conf.update(json.loads(os.environ["BEAT_INTEROP_CONF"]))
app.conf.beat_schedule = {{
    "tick": {{"task": "beatinterop.record", "schedule": 0.3, "args": ["tick"]}},
}}


@app.task(name="beatinterop.record", bind=True)
def record(self, what):
    # Celery's request has unknown headers as attributes; celeriac's has them in .headers.
    beat = getattr(self.request, "celery_beat_task", None) or (self.request.headers or {{}}).get(
        "celery_beat_task"
    )
    with open("runs.log", "a") as out:
        out.write(f"{{what}} {{beat}}\\n")
"""


class Proc:
    def __init__(self, directory: Path, conf: dict[str, object], package: str, *args: str):
        self.log = directory / f"{package}-{args[0]}-{uuid.uuid4().hex[:6]}.log"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(directory)]))
        env["BEAT_INTEROP_CONF"] = json.dumps(conf)
        module = "celeriac" if package == "celeriac" else "celery"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", module, "-A", "beatinterop", *args, "-l", "info"],
                cwd=directory,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def namespace() -> Iterator[dict[str, object]]:
    require_redis()
    prefix = f"celeriac-beat-interop-{os.getpid()}-{uuid.uuid4().hex[:6]}-"
    yield {
        "broker_url": redis_url(REDIS_INTEROP_DB),
        "broker_transport_options": {"global_keyprefix": prefix},
        "task_ignore_result": True,
    }
    delete_redis_keys(REDIS_INTEROP_DB, prefix + "*")


@pytest.mark.parametrize(
    ("beat_package", "worker_package"),
    [("celeriac", "celery"), ("celery", "celeriac")],
    ids=["celeriac-beat-celery-worker", "celery-beat-celeriac-worker"],
)
def test_worker_of_one_package_runs_what_beat_of_the_other_sends(
    tmp_path: Path, namespace: dict[str, object], beat_package: str, worker_package: str
) -> None:
    for package in (beat_package, worker_package):
        directory = tmp_path / package
        directory.mkdir(exist_ok=True)
        (directory / "beatinterop.py").write_text(textwrap.dedent(PROJECT.format(package=package)))
    worker_dir, beat_dir = tmp_path / worker_package, tmp_path / beat_package
    worker = Proc(worker_dir, namespace, worker_package, "worker", "-P", "solo")
    beat = Proc(beat_dir, namespace, beat_package, "beat", "-s", "state", "--max-interval", "1")
    runs = worker_dir / "runs.log"

    def ran() -> bool:
        for proc in (worker, beat):
            if proc.process.poll() is not None:
                raise AssertionError(f"exited early:\n{proc.output()}")
        return runs.exists() and len(runs.read_text().split("\n")) > 3

    try:
        wait_until(ran, f"{worker_package} worker to run {beat_package} beat's task", 45)
    finally:
        beat.stop()
        worker.stop()
    lines = [line for line in runs.read_text().splitlines() if line]
    assert lines and all(line == "tick True" for line in lines), lines
