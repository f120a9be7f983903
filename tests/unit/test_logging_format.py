"""-l levels, --logfile and worker_task_log_format with the task name and id."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from celeriac import Celery
from celeriac.testing import start_worker
from celeriac.utils.log import (
    enter_process,
    get_task_logger,
    parse_loglevel,
    process_format,
    setup_logging,
)
from celeriac.worker.worker import node_format


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


def test_each_pool_process_logs_to_the_file_its_index_names(tmp_path: Path) -> None:
    """``--logfile=w1%I.log``: the main process writes ``w1.log``, pool process 2 (after
    :func:`enter_process`, as a prefork child does first) ``w1-2.log``; ``%i`` is 0, 2."""
    template = str(tmp_path / "w1%I-%i.log")
    assert node_format("%n%I-%i.log", "w1@host", index=None) == "w1%I-%i.log"
    assert node_format("%n%I-%i.log", "w1@host") == "w1-0.log"
    assert process_format("%n%I-%i", 3) == "%n-3-3"
    setup_logging("INFO", template)
    worker_log = logging.getLogger("celeriac.worker")
    worker_log.info("from the main process")
    enter_process(2)
    worker_log.info("from pool process 2")
    get_task_logger("proj.tasks").info("a task's line in pool process 2")
    for handler in [*logging.getLogger().handlers, *logging.getLogger("celeriac.task").handlers]:
        handler.flush()
    main = (tmp_path / "w1-0.log").read_text()
    child = (tmp_path / "w1-2-2.log").read_text()
    assert "from the main process" in main and "pool process 2" not in main
    assert "from pool process 2" in child and "a task's line in pool process 2" in child
    assert "from the main process" not in child
    setup_logging("INFO", str(tmp_path / "plain.log"))  # no index: a pool process keeps it
    enter_process(3)
    worker_log.info("still here")
    for handler in logging.getLogger().handlers:
        handler.flush()
    assert "still here" in (tmp_path / "plain.log").read_text()
    assert not list(tmp_path.glob("*-3*"))


def test_start_worker_puts_the_logging_it_configured_back(memory_app: Celery) -> None:
    """An in-thread worker configures logging as a worker does; when its block ends the
    levels, handlers and the task logger's propagation are as before (a module-scoped test
    worker left the next modules' INFO records unseen)."""
    loggers = [logging.getLogger(n) for n in ("", "celeriac", "celeriac.task")]
    before = [(lg.level, list(lg.handlers), lg.propagate) for lg in loggers]
    with start_worker(memory_app, loglevel="ERROR"):
        assert logging.getLogger("celeriac").level == logging.ERROR  # the worker's own
        assert logging.getLogger("celeriac.task").propagate is False
    assert [(lg.level, list(lg.handlers), lg.propagate) for lg in loggers] == before
