"""``celeriac multi``'s actions on a cluster of detached workers: start, stop, stopwait,
restart, kill, each reported line by line as ``celery multi`` does.

A node is found through its pid file. Before starting, a live pid file means the node is
already running (said, and left alone); a stale one (its process gone, e.g. after ``kill``)
is said and removed. ``stop`` sends the signal (TERM: a warm shutdown) and returns;
``stopwait`` then waits until every node has exited, i.e. finished its running tasks.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence

from celeriac.utils import pidfile
from celeriac.worker.nodes import Node

#: How often stopwait looks whether the nodes are gone.
POLL_INTERVAL = 0.1


def find_signal(args: Sequence[str], values: Sequence[str], default: int = signal.SIGTERM) -> int:
    """``-9`` / ``-KILL`` / ``-SIGKILL`` among the arguments after the node names."""
    for arg in reversed(list(args)[len(values) :]):
        if len(arg) < 2 or arg[0] != "-" or arg.startswith("--"):
            continue
        if arg[1:].isdigit():
            return int(arg[1:])
        name = arg[1:].upper()
        name = name if name.startswith("SIG") else f"SIG{name}"
        with contextlib.suppress(KeyError):
            return int(signal.Signals[name])
    return default


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name.removeprefix("SIG")
    except ValueError:
        return str(signum)


class Cluster:
    """The nodes of one ``multi`` command line, and what to say as things happen."""

    def __init__(
        self,
        nodes: Sequence[Node],
        say: Callable[[str], None],
        *,
        env: dict[str, str] | None = None,
    ) -> None:
        self.nodes = list(nodes)
        self.say = say
        self.env = env

    # -- start ----------------------------------------------------------------------------
    def start(self) -> int:
        """Start every node that is not running; 1 if one failed to start."""
        self.say("> Starting nodes...")
        return int(any(self.start_node(node) for node in list(self.nodes)))

    def start_node(self, node: Node, *, label: str | None = None) -> int:
        prefix = label or f"\t> {node.name}: "
        try:
            pid = self.pid(node)
        except pidfile.PidfileError as exc:
            self.say(f"{prefix}FAILED ({exc})")
            return 1
        if pid is not None:
            self.say(f"{prefix}already running (pid {pid}); not started again")
            return 0
        if os.path.exists(node.pidfile):
            stale = pidfile.read_pid(node.pidfile)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(node.pidfile)
            self.say(
                f"\t> {node.name}: stale pid file {node.pidfile} (pid {stale} is gone): removed"
            )
        for path in (node.pidfile, node.logfile):
            directory = os.path.dirname(path)
            if directory:
                os.makedirs(directory, exist_ok=True)
        done = subprocess.run(
            node.command, env=self.env, capture_output=True, text=True, check=False
        )
        if done.returncode == 0:
            self.say(f"{prefix}OK")
            return 0
        reason = (done.stderr or done.stdout).strip().splitlines()
        self.say(f"{prefix}FAILED" + (f" ({reason[-1]})" if reason else ""))
        self.say(f"* Child terminated with exit code {done.returncode}")
        return done.returncode

    # -- signals --------------------------------------------------------------------------
    def pid(self, node: Node) -> int | None:
        """The pid of the node's live process, from its pid file (None: not running)."""
        pid = pidfile.read_pid(node.pidfile)
        if pid is None or not pidfile.alive(pid):
            return None
        return pid

    def _running(self) -> Iterable[tuple[Node, int]]:
        for node in self.nodes:
            pid = self.pid(node)
            if pid is None:
                self.say(f"> {node.name}: DOWN")
            else:
                yield node, pid

    def send_all(self, signum: int) -> None:
        for node, pid in list(self._running()):
            self.say(f"Sending {signal_name(signum)} to node {node.name} ({pid})")
            self._send(node, pid, signum)

    def _send(self, node: Node, pid: int, signum: int) -> bool:
        try:
            os.kill(pid, signum)
        except (ProcessLookupError, PermissionError):
            self.say(f"Could not signal {node.name} ({pid}): No such process")
            return False
        return True

    def kill(self) -> int:
        self.send_all(signal.SIGKILL)
        return 0

    def stop(self, signum: int = signal.SIGTERM, *, wait: bool = False) -> list[Node]:
        """Signal every running node; with ``wait``, return once each has exited. Returns
        the nodes that were running."""
        running = list(self._running())
        if not running:
            return []
        self.say("> Stopping nodes...")
        waiting: dict[Node, int] = {}
        for node, pid in running:
            self.say(f"\t> {node.name}: {signal_name(signum)} -> {pid}")
            if self._send(node, pid, signum):
                waiting[node] = pid
        if wait and waiting:
            self._wait(waiting)
        return [node for node, _ in running]

    def _wait(self, waiting: dict[Node, int]) -> None:
        pids = ", ".join(str(pid) for pid in waiting.values())
        noun = "node" if len(waiting) == 1 else "nodes"
        self.say(f"> Waiting for {len(waiting)} {noun} -> {pids}...")
        while waiting:
            for node, pid in list(waiting.items()):
                if not pidfile.alive(pid):
                    self.say(f"\t> {node.name}: OK")
                    del waiting[node]
            if waiting:
                time.sleep(POLL_INTERVAL)

    def restart(self, signum: int = signal.SIGTERM) -> int:
        """Stop each running node, wait for it, and start it again (and start the stopped)."""
        self.stop(signum, wait=True)
        failed = 0
        for node in self.nodes:
            failed |= bool(self.start_node(node, label=f"> Restarting node {node.name}: "))
        return int(failed)


__all__ = ["POLL_INTERVAL", "Cluster", "find_signal", "signal_name"]
