"""Retry with backoff, for connecting to a broker and for publishing (Celery's policy dict).

``task_publish_retry_policy`` is ``{"max_retries": 3, "interval_start": 0, "interval_step":
0.2, "interval_max": 0.2}`` in Celery; the same shape drives reconnects
(``broker_connection_max_retries``) with longer intervals.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

_T = TypeVar("_T")
#: How often a wait between attempts asks ``ready`` whether the server is back.
READY_POLL = 0.5


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to wait between attempts (``None`` retries forever)."""

    max_retries: int | None = 3
    interval_start: float = 0.0
    interval_step: float = 0.2
    interval_max: float = 0.2

    @classmethod
    def from_mapping(cls, policy: Mapping[str, Any] | None) -> RetryPolicy:
        """Build from Celery's policy dict; unknown keys are ignored as kombu does."""
        policy = policy or {}
        max_retries = policy.get("max_retries", 3)
        return cls(
            max_retries=None if max_retries is None else int(max_retries),
            interval_start=float(policy.get("interval_start", 0.0)),
            interval_step=float(policy.get("interval_step", 0.2)),
            interval_max=float(policy.get("interval_max", 0.2)),
        )

    def intervals(self) -> Iterator[float]:
        """Seconds to wait before each retry: start, start+step, ... capped at interval_max."""
        attempt = 0
        interval = self.interval_start
        while self.max_retries is None or attempt < self.max_retries:
            yield min(interval, self.interval_max) if self.interval_max else interval
            interval += self.interval_step
            attempt += 1


def retry_call(
    action: Callable[[], _T],
    policy: RetryPolicy,
    errors: tuple[type[BaseException], ...],
    *,
    on_retry: Callable[[BaseException, int, float], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    stop: threading.Event | None = None,
    ready: Callable[[], bool] | None = None,
    failed: BaseException | None = None,
) -> _T:
    """Call ``action``; on one of ``errors`` wait and call again per ``policy``.

    ``failed``: the caller's own first call of ``action`` raised it (a hot path calls once
    without this machinery and comes here only on a failure): handled as the first error.

    ``on_retry(exc, attempt, wait)`` is called before each wait (log there, with the URL
    masked). The last error is re-raised when the policy is exhausted, or at once when
    ``stop`` is set (during a wait, too). ``ready`` (a cheap probe: is the server accepting
    connections again?) is asked every ``READY_POLL`` seconds of a wait, which ends early when
    it says yes: a long backoff does not delay the reconnect after the server's return.
    """
    intervals = policy.intervals()
    attempt = 0
    while True:
        try:
            if failed is not None:
                first, failed = failed, None
                raise first
            return action()
        except errors as exc:
            wait = next(intervals, None)
            if wait is None:
                raise
            attempt += 1
            if stop is not None and stop.is_set():
                raise
            if on_retry is not None:
                on_retry(exc, attempt, wait)
            if _wait(wait, sleep, stop, ready):
                raise


def tcp_listening(host: str, port: int, timeout: float = 0.5) -> bool:
    """Does ``host:port`` accept a TCP connection? (A ``ready`` probe for :func:`retry_call`:
    a worker reconnects within a second of the server's return, not after its backoff.)"""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _wait(
    seconds: float,
    sleep: Callable[[float], None],
    stop: threading.Event | None,
    ready: Callable[[], bool] | None,
) -> bool:
    """Wait ``seconds`` (less once ``ready()``); True when ``stop`` was set meanwhile."""
    if ready is None:
        if stop is None:
            sleep(seconds)
            return False
        return stop.wait(seconds)
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if stop is None:
            sleep(min(READY_POLL, left))
        elif stop.wait(min(READY_POLL, left)):
            return True
        if ready():
            return False
    return False


__all__ = ["RetryPolicy", "retry_call"]
