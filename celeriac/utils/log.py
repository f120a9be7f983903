"""Logging setup for the worker, and task loggers whose records carry the task name and id.

``setup_logging`` configures the root logger once (as Celery's ``worker_hijack_root_logger``
does): one handler to stderr or to ``logfile`` with ``worker_log_format``. Records of loggers
made with :func:`get_task_logger` go through a second handler with ``worker_task_log_format``,
which names the task being executed (``%(task_name)s[%(task_id)s]``).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from celeriac import signals
from celeriac.utils.current import get_current_task

#: Parent of every task logger (Celery's is ``celery.task``).
TASK_LOGGER_NAME = "celeriac.task"

DEFAULT_FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s] %(message)s"
DEFAULT_TASK_FORMAT = (
    "[%(asctime)s: %(levelname)s/%(processName)s] %(task_name)s[%(task_id)s]: %(message)s"
)

_LEVELS = {
    "CRITICAL": logging.CRITICAL,
    "FATAL": logging.CRITICAL,
    "ERROR": logging.ERROR,
    "WARN": logging.WARNING,
    "WARNING": logging.WARNING,
    "INFO": logging.INFO,
    "DEBUG": logging.DEBUG,
}

#: Handlers installed by ``setup_logging`` (removed again by the next call).
_installed: list[tuple[logging.Logger, logging.Handler]] = []
#: The log file as given, ``%i`` / ``%I`` unexpanded (each pool process expands its own).
_logfile_template: str | None = None


def process_format(text: str, index: int = 0) -> str:
    """Celery's process-index expansion: ``%i`` is the pool process index (0: the main
    process), ``%I`` the same as ``-<index>`` (empty in the main process)."""
    return text.replace("%i", str(index)).replace("%I", f"-{index}" if index else "")


def enter_process(index: int) -> None:
    """In pool process ``index`` (1, 2, ...): when the log file's name has ``%i`` or ``%I``,
    the handlers ``setup_logging`` installed write to this process's own file instead, as a
    Celery prefork child does (``--logfile=%n%I.log``: ``w1-1.log``, ``w1-2.log``)."""
    template = _logfile_template
    if not template or ("%i" not in template and "%I" not in template):
        return
    path = process_format(template, index)
    for position, (logger, handler) in enumerate(list(_installed)):
        replacement = _stream_handler(path)
        replacement.setFormatter(handler.formatter)
        replacement.setLevel(handler.level)
        logger.removeHandler(handler)
        handler.close()
        logger.addHandler(replacement)
        _installed[position] = (logger, replacement)


def parse_loglevel(level: str | int) -> int:
    """``"info"`` -> ``logging.INFO``; ints pass through; an unknown name is a ValueError."""
    if isinstance(level, int):
        return level
    text = str(level).strip().upper()
    if text.isdigit():
        return int(text)
    try:
        return _LEVELS[text]
    except KeyError:
        names = ", ".join(n for n in _LEVELS if n not in ("FATAL", "WARN"))
        raise ValueError(f"unknown log level {level!r} (use one of {names})") from None


class TaskFormatter(logging.Formatter):
    """Adds ``task_name`` and ``task_id`` of the task running in this thread (``???`` if none)."""

    def format(self, record: logging.LogRecord) -> str:
        task = get_current_task()
        request = getattr(task, "request", None) if task is not None else None
        task_id = getattr(request, "id", None) if request is not None else None
        record.__dict__.setdefault("task_name", getattr(task, "name", None) or "???")
        record.__dict__.setdefault("task_id", task_id or "???")
        return super().format(record)


def get_logger(name: str) -> logging.Logger:
    """A plain logger (``celeriac.utils.log.get_logger`` in Celery's layout)."""
    return logging.getLogger(name)


def get_task_logger(name: str) -> logging.Logger:
    """A logger for use inside tasks; its records show the running task's name and id."""
    if name in (TASK_LOGGER_NAME, "celery.task"):
        raise RuntimeError(f"logger name {name!r} is reserved")
    logger = logging.getLogger(name)
    # Re-parent under the task logger so the task format applies, as Celery does.
    logger.parent = logging.getLogger(TASK_LOGGER_NAME)
    return logger


def _stream_handler(logfile: str | None) -> logging.Handler:
    if logfile:
        return logging.FileHandler(logfile, encoding="utf-8")
    return logging.StreamHandler(sys.stderr)


def setup_logging(
    loglevel: str | int = "WARNING",
    logfile: str | None = None,
    *,
    fmt: str = DEFAULT_FORMAT,
    task_fmt: str = DEFAULT_TASK_FORMAT,
    hijack_root: bool = True,
) -> int:
    """Configure the root and task loggers; return the numeric level.

    A receiver of the ``setup_logging`` signal takes over entirely (Celery's contract); with
    ``hijack_root=False`` only the level of celeriac's own loggers is set. ``logfile`` may
    hold ``%i`` / ``%I``: this process logs to it as the main process (index 0), and pool
    processes to their own files (:func:`enter_process`).
    """
    global _logfile_template
    _logfile_template = logfile
    logfile = process_format(logfile) if logfile else logfile
    level = parse_loglevel(loglevel)
    if signals.setup_logging.receivers:
        signals.setup_logging.send(
            sender=None, loglevel=level, logfile=logfile, format=fmt, colorize=False
        )
        return level
    _remove_installed()
    root = logging.getLogger()
    task_logger = logging.getLogger(TASK_LOGGER_NAME)
    if hijack_root:
        handler = _stream_handler(logfile)
        handler.setFormatter(logging.Formatter(fmt))
        _install(root, handler)
        root.setLevel(level)
        task_handler = _stream_handler(logfile)
        task_handler.setFormatter(TaskFormatter(task_fmt))
        _install(task_logger, task_handler)
        task_logger.propagate = False
    logging.getLogger("celeriac").setLevel(level)
    task_logger.setLevel(level)
    _send_after_setup(root, task_logger, level, logfile, fmt, task_fmt)
    return level


def _install(logger: logging.Logger, handler: logging.Handler) -> None:
    logger.addHandler(handler)
    _installed.append((logger, handler))


def _remove_installed() -> None:
    while _installed:
        logger, handler = _installed.pop()
        logger.removeHandler(handler)
        handler.close()


def _send_after_setup(
    root: logging.Logger,
    task_logger: logging.Logger,
    level: int,
    logfile: str | None,
    fmt: str,
    task_fmt: str,
) -> None:
    common: dict[str, Any] = {"loglevel": level, "logfile": logfile, "colorize": False}
    signals.after_setup_logger.send(sender=None, logger=root, format=fmt, **common)
    signals.after_setup_task_logger.send(sender=None, logger=task_logger, format=task_fmt, **common)


__all__ = [
    "DEFAULT_FORMAT",
    "DEFAULT_TASK_FORMAT",
    "TASK_LOGGER_NAME",
    "TaskFormatter",
    "enter_process",
    "get_logger",
    "get_task_logger",
    "parse_loglevel",
    "process_format",
    "setup_logging",
]
