"""Wake-ups for one SQLite file across processes (drivers/wakeup.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

from celeriac.drivers.wakeup import channel_dir, wakeup_for

WAITER = textwrap.dedent(
    """
    import sys
    from celeriac.drivers.wakeup import wakeup_for

    wakeup = wakeup_for(sys.argv[1])
    seen = wakeup.generation
    print("ready", flush=True)
    wakeup.wait(seen, 50)
    print("woken" if wakeup.generation != seen else "timed out", flush=True)
    """
)


def test_a_commit_in_one_process_wakes_a_waiter_in_another(tmp_path: Path) -> None:
    path = str(tmp_path / "results.sqlite")
    with subprocess.Popen(
        [sys.executable, "-c", WAITER, path], stdout=subprocess.PIPE, text=True
    ) as child:
        assert child.stdout is not None
        try:
            assert child.stdout.readline().strip() == "ready"
            wakeup_for(path).notify()
            # Without the datagram the child sleeps its whole 50 s and says "timed out".
            assert child.stdout.readline().strip() == "woken"
        finally:
            child.kill()


def test_the_socket_of_a_process_that_is_gone_is_removed(tmp_path: Path) -> None:
    path = str(tmp_path / "broker.sqlite")
    directory = channel_dir(path)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    stale = directory / "999999-0"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(stale))
    sock.close()  # the file stays, nobody reads it: as after a kill -9
    wakeup_for(path).notify()
    assert not stale.exists()


def test_waiters_in_this_process_wake_without_a_socket(tmp_path: Path) -> None:
    wakeup = wakeup_for(str(tmp_path / "x.sqlite"))
    seen = wakeup.generation
    wakeup.notify()
    assert wakeup.generation == seen + 1
    wakeup.wait(seen, 50)  # returns at once: the generation moved on
    assert os.path.isdir(channel_dir(str(tmp_path / "x.sqlite")))


EXITING = textwrap.dedent(
    """
    import sys
    from celeriac.drivers.wakeup import channel_dir, wakeup_for

    wakeup = wakeup_for(sys.argv[1])
    wakeup.generation  # binds this process's listening socket
    wakeup.notify()  # opens this process's sending socket
    """
)


def test_a_process_that_used_wake_ups_exits_with_its_sockets_closed(tmp_path: Path) -> None:
    path = str(tmp_path / "results.sqlite")
    waiter = wakeup_for(path)
    waiter.generation  # noqa: B018 (binds a listening socket the child sends to)
    try:
        done = subprocess.run(
            [sys.executable, "-X", "dev", "-W", "error", "-c", EXITING, path],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr
        # Left open at exit, each socket is a ResourceWarning printed as the child ends.
        assert "ResourceWarning" not in done.stderr, done.stderr
        names = {entry.name for entry in channel_dir(path).iterdir()}
        # The child's socket file went with it; only this process's own is left.
        assert all(name.startswith(f"{os.getpid()}-") for name in names), names
    finally:
        waiter.close()
