"""The liveness file is opt-in: no path, no file (the pid file is still touched); a clean stop
removes it; ``celeriac check`` says what to give it when it has nothing to probe."""

from __future__ import annotations

import os
from pathlib import Path

from click.testing import CliRunner

from celeriac import Celery
from celeriac.cli.main import celeriac
from celeriac.worker.liveness import Liveness, probe_file, probe_pidfile
from celeriac.worker.worker import Worker


def test_a_worker_has_no_liveness_file_unless_given_one(tmp_path: Path) -> None:
    app = Celery("live", broker="memory://live", set_as_current=False)
    assert Worker(app, hostname="w@h").liveness is None
    app.conf.worker_liveness_file = str(tmp_path / "%n.alive")
    given = Worker(app, hostname="w1@h").liveness
    assert given is not None and given.path == str(tmp_path / "w1.alive")


def test_beats_write_the_file_touch_the_pidfile_and_remove_clears(tmp_path: Path) -> None:
    pidfile = tmp_path / "w.pid"
    pidfile.write_text(f"{os.getpid()}\n")
    os.utime(pidfile, (0, 0))
    pid_only = Liveness(None, "w@h", str(pidfile))
    pid_only.beat()
    assert probe_pidfile(str(pidfile)).ok and list(tmp_path.iterdir()) == [pidfile]
    pid_only.remove()  # nothing to remove, nothing raised

    path = tmp_path / "w.alive"
    both = Liveness(str(path), "w@h", str(pidfile))
    both.beat()
    assert probe_file(str(path)).ok and "w@h: OK" in probe_file(str(path)).line
    both.remove()
    assert not path.exists() and "not running" in probe_file(str(path)).line


def test_check_with_nothing_to_probe_says_what_to_give() -> None:
    result = CliRunner().invoke(celeriac, ["check"])
    assert result.exit_code == 2
    assert "--liveness-file" in result.output and "--pidfile" in result.output
