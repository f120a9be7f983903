"""A worker on the embedded SQLite default whose result or broker file is read-only (made
immutable with ``chattr +i``: root writes through file permissions, not through that): it
exits at start with one line naming the file, the problem and the fix, and takes nothing
from the broker; once the file is writable again every task runs and its result is stored."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.faults.harness import stage, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@contextlib.contextmanager
def immutable(path: Path) -> Iterator[None]:
    made = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if made.returncode != 0:  # not root, or a file system without the flag
        pytest.skip(f"chattr +i is not available here: {made.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


@pytest.mark.parametrize("name", ["results.sqlite", "broker.sqlite"])
def test_a_read_only_file_stops_the_worker_at_start_and_nothing_is_taken(
    tmp_path: Path, name: str
) -> None:
    tasks = 5
    with stage("sqlite", tmp_path) as scene:
        scene.send(tasks)
        scene.stored(["warm-up"])  # the result store's file exists and has its tables
        broker = tmp_path / "broker.sqlite"
        waiting = _rows(broker)
        assert waiting >= tasks
        with immutable(tmp_path / name):
            refused = scene.worker("-P", "solo", ready=False, piped=True)
            assert refused.process.wait(60) != 0
        said = refused.output().strip().splitlines()[-1]
        assert str(tmp_path / name) in said, said
        assert "read-only" in said and "writable" in said, said
        assert _rows(broker) == waiting  # nothing taken, nothing acknowledged
        scene.worker("-P", "solo")
        wait_until(lambda: scene.stored(sorted(scene.sent)) == tasks, "every result", 60)


def _rows(broker: Path) -> int:
    import sqlite3

    with contextlib.closing(sqlite3.connect(f"file:{broker}?mode=ro", uri=True)) as db:
        return int(db.execute("SELECT count(*) FROM messages").fetchone()[0])
