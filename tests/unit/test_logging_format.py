"""-l levels, --logfile and worker_task_log_format with the task name and id."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from celeriac import Celery
from celeriac.testing import start_worker
from celeriac.utils.log import get_task_logger, parse_loglevel, setup_logging


@pytest.mark.parametrize(("text", "level"), [("info", 20), ("DEBUG", 10), ("warn", 30), (40, 40)])
def test_levels(text: str | int, level: int) -> None:
    assert parse_loglevel(text) == level


def test_unknown_level() -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        parse_loglevel("loud")


def test_task_log_lines_carry_name_and_id(memory_app: Celery, tmp_path: Path) -> None:
    logfile = tmp_path / "worker.log"
    memory_app.conf.worker_task_log_format = "%(levelname)s %(task_name)s[%(task_id)s] %(message)s"
    log = get_task_logger("proj.tasks")

    @memory_app.task(name="proj.tasks.hello")
    def hello() -> str:
        log.info("hello from the task")
        return "ok"

    with start_worker(memory_app, loglevel="INFO", logfile=str(logfile)):
        assert hello.apply_async(task_id="log-1").get(timeout=10) == "ok"
    text = logfile.read_text()
    assert "INFO proj.tasks.hello[log-1] hello from the task" in text
    assert "Task proj.tasks.hello[log-1] succeeded" in text


def test_setup_logging_level_outside_tasks(tmp_path: Path) -> None:
    logfile = tmp_path / "x.log"
    assert setup_logging("ERROR", str(logfile)) == logging.ERROR
    logging.getLogger("celeriac.worker").warning("hidden")
    logging.getLogger("celeriac.worker").error("shown")
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = logfile.read_text()
    assert "shown" in text and "hidden" not in text
