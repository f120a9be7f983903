"""RetryPolicy and retry_call: Celery's retry policy dict, with a fake clock."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from celeriac.drivers.reconnect import READY_POLL, RetryPolicy, retry_call


def test_intervals_follow_celerys_policy() -> None:
    policy = RetryPolicy.from_mapping(
        {"max_retries": 4, "interval_start": 0, "interval_step": 0.5, "interval_max": 1.0}
    )
    assert list(policy.intervals()) == [0.0, 0.5, 1.0, 1.0]


def test_default_policy_is_celerys_publish_policy() -> None:
    assert list(RetryPolicy.from_mapping(None).intervals()) == [0.0, 0.2, 0.2]


def test_retry_call_succeeds_after_failures() -> None:
    calls: list[int] = []
    waits: list[float] = []
    seen: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("down")
        return "ok"

    result = retry_call(
        flaky,
        RetryPolicy(max_retries=5, interval_start=1, interval_step=1, interval_max=10),
        (ConnectionError,),
        on_retry=lambda exc, attempt, wait: seen.append(attempt),
        sleep=waits.append,
    )
    assert result == "ok"
    assert waits == [1.0, 2.0]
    assert seen == [1, 2]


def test_a_failure_of_the_callers_own_first_call_counts_as_the_first_attempt() -> None:
    """The hot path calls once itself and hands its error over: the policy goes on from
    there (a wait, then the second call), not from the start."""
    calls: list[int] = []
    waits: list[float] = []
    seen: list[tuple[str, int]] = []

    def back() -> str:
        calls.append(1)
        return "ok"

    result = retry_call(
        back,
        RetryPolicy(max_retries=1, interval_start=1, interval_step=1, interval_max=10),
        (ConnectionError,),
        on_retry=lambda exc, attempt, wait: seen.append((str(exc), attempt)),
        sleep=waits.append,
        failed=ConnectionError("first call"),
    )
    assert (result, calls, waits, seen) == ("ok", [1], [1.0], [("first call", 1)])
    with pytest.raises(ConnectionError, match="first call"):  # no retries left: given up
        retry_call(
            back,
            RetryPolicy(max_retries=0),
            (ConnectionError,),
            failed=ConnectionError("first call"),
        )
    assert calls == [1]


def test_retry_call_gives_up_with_the_last_error() -> None:
    waits: list[float] = []

    def down() -> None:
        raise ConnectionError("still down")

    with pytest.raises(ConnectionError, match="still down"):
        retry_call(down, RetryPolicy(max_retries=2), (ConnectionError,), sleep=waits.append)
    assert len(waits) == 2


def test_other_errors_are_not_retried() -> None:
    with pytest.raises(ValueError):
        retry_call(lambda: int("x"), RetryPolicy(max_retries=5), (ConnectionError,))


def test_a_wait_ends_early_once_the_server_is_back() -> None:
    # A worker on a long backoff (30 s here) reconnects within READY_POLL of the server's
    # return instead of waiting the interval out.
    calls: list[float] = []
    probes: list[float] = []

    def down_once() -> str:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise ConnectionError("down")
        return "ok"

    def ready() -> bool:
        probes.append(time.monotonic())
        return len(probes) >= 2  # back at the second probe

    started = time.monotonic()
    policy = RetryPolicy(max_retries=3, interval_start=30, interval_step=0, interval_max=30)
    assert retry_call(down_once, policy, (ConnectionError,), ready=ready) == "ok"
    assert len(probes) == 2
    assert time.monotonic() - started < 2 * READY_POLL + 1


def test_a_stop_during_a_probed_wait_ends_it() -> None:
    stop = threading.Event()
    stop.set()

    def down() -> None:
        raise ConnectionError("down")

    policy = RetryPolicy(max_retries=3, interval_start=30, interval_step=0, interval_max=30)
    started = time.monotonic()
    with pytest.raises(ConnectionError):
        retry_call(down, policy, (ConnectionError,), stop=stop, ready=lambda: False)
    assert time.monotonic() - started < 1


@pytest.mark.timeout(20)
def test_an_amqp_reconnect_wait_ends_when_the_port_answers_again() -> None:
    """AMQP's reconnect waits (Celery's backoff reaches 30 s) end once the server's port
    accepts connections again: after a long outage the worker is back within a second, not
    after the rest of its backoff (the fault suite measured 5.1 s after a 15 s outage)."""
    pytest.importorskip("amqp")
    from celeriac.transports.amqp.conn import parse_params, with_retries  # needs py-amqp

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = int(probe.getsockname()[1])  # bound, not listening: connections are refused
    params = parse_params(f"amqp://guest:guest@127.0.0.1:{port}//", {})
    policy = RetryPolicy(max_retries=3, interval_start=60.0, interval_step=0.0, interval_max=60.0)
    calls: list[float] = []

    def action() -> str:
        calls.append(time.monotonic())
        if len(calls) == 1:
            probe.listen()  # the server is back while the worker waits its 60 s
            raise ConnectionRefusedError(111, "Connection refused")
        return "connected"

    try:
        assert with_retries(action, params, policy, what="test", on_error=lambda: None) == (
            "connected"
        )
    finally:
        probe.close()
    assert len(calls) == 2
