"""One prefork supervisor: the life of forked children, whatever feeds them their work.

A :class:`Supervisor` forks the children, replaces one that exits (``max_tasks_per_child``,
``max_memory_per_child``, a crash), retires some (shrink) or adds more (grow), kills a child
whose task ran past its hard time limit or that ``revoke(terminate=True)`` names, and stops
them all: warm (each finishes its work) or cold (terminated). What differs between the two
prefork topologies is a :class:`ChildStrategy`: what a child runs, how work reaches it, how
the parent learns which task it runs and settles its work when it dies:

* pipe-fed (``pool.py``): the parent's consumer sends each child batches through a pipe;
* directly consuming (``direct.py``): each child consumes itself and keeps a shared slot.

One loop (:meth:`Supervisor.run`) waits on every child's sentinel and on the pipe it talks to
the parent through; the pipe-fed pool runs it in a thread, the directly consuming pool in the
worker's main thread.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import resource
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.context import ForkContext
from multiprocessing.process import BaseProcess
from typing import Any, Generic, TypeVar

from celeriac.execution import timelimits
from celeriac.utils import log
from celeriac.worker.pools.base import BasePool
from celeriac.worker.pools.prefork.messages import Running

#: How long the loop waits when no hard limit is due sooner (seconds).
POLL = 0.5
#: How long a terminated child may take to exit before it is killed (seconds).
TERMINATE_GRACE = 2.0


@dataclass(eq=False)
class Child:
    """One child process as the supervisor keeps it (each strategy adds its pipes)."""

    process: BaseProcess
    #: Its process index (Celery's ``%i``): 1 to the pool's size, the lowest one free.
    index: int = field(default=0, kw_only=True)
    retiring: bool = field(default=False, kw_only=True)  # shrunk: not replaced when it exits
    killed_for: float | None = field(default=None, kw_only=True)  # the hard limit it passed

    @property
    def pid(self) -> int:
        return self.process.pid or 0


C = TypeVar("C", bound=Child)


class ChildStrategy(ABC, Generic[C]):
    """What a prefork topology decides: what a child runs and how the parent talks to it."""

    @abstractmethod
    def spawn_child(self, ctx: ForkContext, name: str, inherited: list[Connection]) -> C:
        """Fork a child called ``name``; it closes ``inherited`` (the parent's pipe ends)."""

    @abstractmethod
    def parent_ends(self, child: C) -> list[Connection]:
        """The ends of ``child``'s pipes the parent holds (closed in every other child, and
        by the supervisor when ``child`` exits)."""

    @abstractmethod
    def listen(self, child: C) -> Connection:
        """The end the parent reads what ``child`` says from."""

    @abstractmethod
    def read_child(self, child: C) -> None:
        """Read what ``child`` said (never raises for a pipe that broke)."""

    @abstractmethod
    def stop_child(self, child: C, warm: bool) -> None:
        """Tell ``child`` to stop: warm after its work, or at once."""

    @abstractmethod
    def running_job(self, child: C) -> Running | None:
        """The task ``child`` runs now, if it is known (with its hard limit, if any)."""

    @abstractmethod
    def settle(self, child: C, exitcode: int | None) -> None:
        """``child`` exited (and was replaced if it is to be): report or settle its work."""

    def may_retire(self, child: C) -> bool:
        """``child`` may be chosen when the pool shrinks."""
        return True

    def watch(self, child: C) -> None:
        """Each turn of the supervisor's loop (at least every ``POLL`` s), in its thread."""

    def replaces(self, exitcode: int | None) -> bool:
        """A child that exited with ``exitcode`` is replaced (unless stopping or retiring)."""
        return True


class Supervisor(Generic[C]):
    """Keeps ``children`` alive as ``strategy`` makes them; ``run`` watches them."""

    def __init__(self, strategy: ChildStrategy[C]) -> None:
        self.strategy = strategy
        self.children: list[C] = []
        self.lock = threading.RLock()
        self.ctx = multiprocessing.get_context("fork")
        self.closing = False  # no new work, no replacements
        self.cold = False  # a cold stop was asked for: terminate the children
        self.terminated = False  # they were terminated: their work is not reported
        self._wake_r, self._wake_w = self.ctx.Pipe(duplex=False)
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, count: int, *, in_thread: bool = False) -> None:
        """Fork ``count`` children; with ``in_thread``, run the loop in a thread of its own."""
        with self.lock:
            if self.closing:  # stopped before it started
                return
            for _ in range(count):
                self.children.append(self._spawn())
        if in_thread:
            self._thread = threading.Thread(target=self.run, name="prefork-supervisor", daemon=True)
            self._thread.start()

    def _spawn(self) -> C:
        # The parent's ends of every pipe close in the child (its own too, so the parent's
        # death is an EOF there), and the wake-up pipe.
        inherited = [self._wake_r, self._wake_w]
        for other in self.children:
            inherited += self.strategy.parent_ends(other)
        name = f"ForkPoolWorker-{len(self.children) + 1}"
        taken = {c.index for c in self.children}
        index = next(i for i in itertools.count(1) if i not in taken)  # as billiard reuses
        global _forking_index
        _forking_index = index  # the forked child reads it (enter_child); under self.lock
        child = self.strategy.spawn_child(self.ctx, name, inherited)
        child.index = index
        return child

    def stop(self, warm: bool = True) -> None:
        """Any thread (or a signal handler): stop taking work; warm lets the children finish."""
        with self.lock:
            self.closing = True
            if not warm:
                self.cold = True
            for child in self.children:
                self.strategy.stop_child(child, warm)
        send(self._wake_w, b"")

    def shutdown(self, grace: float | None) -> None:
        """Stop and wait for every child: warm for ``grace`` seconds (None: as long as their
        work takes), then cold."""
        self.stop(warm=grace is None or grace > 0)
        if grace is not None and grace > 0:
            self._timer = threading.Timer(grace, self.stop, kwargs={"warm": False})
            self._timer.daemon = True
            self._timer.start()
        self.wait()

    def wait(self) -> None:
        """Until every child has exited after :meth:`stop`."""
        if self._thread is not None:
            self._thread.join()
        else:
            self.run()
        if self._timer is not None:
            self._timer.cancel()

    def terminate_all(self) -> None:
        """Terminate every child (killed if it has not exited ``TERMINATE_GRACE`` later)."""
        with self.lock:
            self.terminated = True
            children = list(self.children)
        for child in children:
            if child.process.is_alive():
                child.process.terminate()
        for child in children:
            child.process.join(TERMINATE_GRACE)
            if child.process.is_alive():
                child.process.kill()

    # -- size and running tasks --------------------------------------------------------------
    @property
    def size(self) -> int:
        with self.lock:
            return sum(1 for c in self.children if not c.retiring)

    def grow(self, n: int) -> None:
        with self.lock:
            for _ in range(n):
                self.children.append(self._spawn())

    def shrink(self, n: int) -> int:
        """Retire up to ``n`` children (never the last one); return how many."""
        with self.lock:
            candidates = [
                c for c in self.children if not c.retiring and self.strategy.may_retire(c)
            ]
            chosen = candidates[: max(0, min(n, self.size - 1))]
            for child in chosen:
                child.retiring = True
                self.strategy.stop_child(child, True)
            return len(chosen)

    def pids(self) -> list[int]:
        with self.lock:
            return [c.pid for c in self.children]

    def running(self) -> list[Running]:
        with self.lock:
            children = list(self.children)
        return [r for c in children if (r := self.strategy.running_job(c)) is not None]

    def terminate_job(self, task_id: str, signum: int | None = None) -> bool:
        """Signal the child running ``task_id``; False if none does."""
        with self.lock:
            for child in self.children:
                running = self.strategy.running_job(child)
                if running is not None and running.task_id == task_id:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(child.pid, signum or signal.SIGTERM)
                    return True
        return False

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> None:
        """Watch the children until every one has exited after :meth:`stop`."""
        while True:
            with self.lock:
                children = list(self.children)
            if not children:
                return
            waitables: dict[Any, C | None] = {self._wake_r: None}
            for child in children:
                waitables[child.process.sentinel] = child
                waitables[self.strategy.listen(child)] = child
            for ready in wait(list(waitables), timeout=self.next_wakeup(children)):
                owner = waitables[ready]
                if owner is None:
                    drain(self._wake_r)
                elif ready is self.strategy.listen(owner):
                    self.strategy.read_child(owner)
                elif owner in self.children:
                    self.reap(owner)
            if self.cold and not self.terminated:
                self.terminate_all()
            self.enforce_hard_limits()
            for child in children:
                self.strategy.watch(child)

    def next_wakeup(self, children: Sequence[C]) -> float:
        """Seconds until the first hard limit is due (at most ``POLL``)."""
        now = time.monotonic()
        wait_for = POLL
        for child in children:
            running = self.strategy.running_job(child)
            if running is not None and running.hard_limit is not None and child.killed_for is None:
                wait_for = min(wait_for, running.started + running.hard_limit - now)
        return max(0.0, wait_for)

    def enforce_hard_limits(self) -> None:
        """Kill the children whose task ran past its hard limit; :meth:`reap` settles it."""
        now = time.monotonic()
        with self.lock:
            children = list(self.children)  # not one reaped meanwhile (its slot is closed)
        for child in children:
            running = self.strategy.running_job(child)
            if running is None or running.hard_limit is None or child.killed_for is not None:
                continue
            if now >= running.started + running.hard_limit:
                child.killed_for = running.hard_limit
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGKILL)

    def reap(self, child: C) -> None:
        """``child`` exited: replace it unless stopping or retiring, then settle its work."""
        self.strategy.read_child(child)  # what it said just before dying still counts
        child.process.join()
        exitcode = child.process.exitcode
        with self.lock:
            self.children.remove(child)
            for conn in self.strategy.parent_ends(child):
                conn.close()
            if not (self.closing or child.retiring) and self.strategy.replaces(exitcode):
                self.children.append(self._spawn())
        self.strategy.settle(child, exitcode)


class Supervised(BasePool, ChildStrategy[C]):
    """A pool that is the strategy of its own :class:`Supervisor`: size, growth, process ids
    and terminating a task are the supervisor's."""

    name = "prefork"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The pool's own constructor (Pool or ConsumingPool) takes the arguments. The
        # supervisor exists before any thread can ask it (remote control starts first).
        super().__init__(*args, **kwargs)
        self.supervisor: Supervisor[C] = Supervisor(self)

    @property
    def size(self) -> int:
        return self.supervisor.size

    def grow(self, n: int = 1) -> None:
        self.supervisor.grow(n)
        self.concurrency += n

    def shrink(self, n: int = 1) -> None:
        self.concurrency -= self.supervisor.shrink(n)

    def pids(self) -> list[int]:
        return self.supervisor.pids()

    def terminate_job(self, task_id: str, signum: int | None = None) -> bool:
        return self.supervisor.terminate_job(task_id, signum)

    def running_ids(self) -> list[str]:
        return [r.task_id for r in self.supervisor.running()]


# -- in the child -----------------------------------------------------------------------------
#: The index of the child being forked (set by the supervisor under its lock just before the
#: fork, so each child finds its own here).
_forking_index = 0


def enter_child(inherited: Sequence[Connection]) -> None:
    """What every child does first: leave shutdown to the parent, close the parent's pipe
    ends, let a hard time limit's alarm end the process, and log to its own file when the
    log file's name has the process index (``--logfile=%n%I.log``: ``w1-1.log``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides about shutdown
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # drop the parent's Python handler
    for conn in inherited:
        conn.close()
    timelimits.install_alarm_default()
    log.enter_process(_forking_index)


def resident_kib() -> int:
    """Peak resident memory of this process in KiB (Linux reports ru_maxrss in KiB)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


# -- pipes ------------------------------------------------------------------------------------
def send(conn: Connection, obj: Any) -> None:
    """Send, unless the pipe broke (a dead child's sentinel reports it)."""
    with contextlib.suppress(OSError, ValueError):
        conn.send(obj)


def drain(conn: Connection) -> None:
    """Read and drop whatever ``conn`` holds."""
    with contextlib.suppress(EOFError, OSError):
        while conn.poll():
            conn.recv()


__all__ = [
    "POLL",
    "Child",
    "ChildStrategy",
    "Supervised",
    "Supervisor",
    "drain",
    "enter_child",
    "resident_kib",
    "send",
]
