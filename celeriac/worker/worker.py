"""``Worker``: builds the pool and consumer in plain code, runs them, shuts them down.

Shutdown follows Celery: the first SIGTERM/SIGINT is a *warm* shutdown (stop fetching, give
reserved messages back, let running tasks finish); a second one, or SIGQUIT, is *cold*
(terminate the pool's processes, give back every unacknowledged message).
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from queue import SimpleQueue
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from celeriac import signals
from celeriac.app.annotations import apply_annotations
from celeriac.app.cluster import ClusterStore, cluster_store_for
from celeriac.backends.capabilities import OpensAtStart
from celeriac.beat.service import Beat
from celeriac.events.event import HEARTBEAT_FREQUENCY
from celeriac.events.node import NodeEvents
from celeriac.events.node import register as register_node
from celeriac.events.node import unregister as unregister_node
from celeriac.protocol.entities import Queue
from celeriac.utils.log import parse_loglevel, process_format, setup_logging
from celeriac.utils.missing import startup_warnings
from celeriac.worker import inspection, management  # noqa: F401 (their commands register)
from celeriac.worker.autoscale import Autoscaler
from celeriac.worker.banner import banner
from celeriac.worker.commands import ControlContext, Mailbox, Query, Relay, Sweeper
from celeriac.worker.consumer import Consumer
from celeriac.worker.heartbeat import Heartbeat
from celeriac.worker.liveness import Liveness
from celeriac.worker.persistent import StateDB
from celeriac.worker.pools import pool_class
from celeriac.worker.pools.base import BasePool, ConsumingPool, PoolReport, RunsInMainThread
from celeriac.worker.pools.prefork.direct import DirectPreforkPool
from celeriac.worker.ratelimit import RateLimiter
from celeriac.worker.state import WorkerState

if TYPE_CHECKING:
    from celeriac.app.base import Celery
    from celeriac.transports.base import Transport

logger = logging.getLogger("celeriac.worker")

NODENAME_DEFAULT = "celery"
#: How long a heartbeat waits for consuming children to count what they ran (seconds).
HEARTBEAT_QUERY_TIMEOUT = 0.5

#: Pools (by ``-P`` name) run instead of the named one, with no consumer in this process,
#: where the broker lets each process consume for itself (``Transport.direct_consume``) and
#: ``worker_direct_consume`` is on: prefork children then fetch their own work.
CONSUMING_POOLS: dict[str, type[ConsumingPool]] = {
    "prefork": DirectPreforkPool,
    "processes": DirectPreforkPool,
}


class Runner(Protocol):
    """What the worker runs in its main thread: the consumer, or a pool whose processes
    consume for themselves (:class:`~celeriac.worker.pools.base.ConsumingPool`)."""

    @property
    def cold(self) -> bool: ...

    def run(self) -> None: ...

    def stop(self, warm: bool = True) -> None: ...

    def finish(self) -> int: ...

    def request_sweep(self) -> None: ...


@runtime_checkable
class Relays(Protocol):
    """A runner whose processes keep their own state: remote control is relayed to them."""

    def relay(self, method: str, arguments: dict[str, Any]) -> None: ...


@runtime_checkable
class Queries(Protocol):
    """A runner whose processes keep their own state: inspect commands ask them too."""

    def query(self, method: str, arguments: dict[str, Any], timeout: float = 1.0) -> list[Any]: ...


class WorkerTerminate(SystemExit):
    """Raised by a cold shutdown signal to interrupt a task running in the main thread (solo)."""


def host_format(name: str, hostname: str | None = None) -> str:
    """Expand ``%h`` (host), ``%n`` (its first label) and ``%d`` (its domain), as Celery does."""
    host = hostname or socket.gethostname()
    short, _, domain = host.partition(".")
    return name.replace("%h", host).replace("%n", short).replace("%d", domain)


def default_nodename(hostname: str | None = None) -> str:
    """``name@host``: ``None`` -> ``celery@<this host>``; ``w1`` -> ``celery@w1``."""
    name, sep, host = (hostname or "").partition("@")
    if not sep:
        name, host = NODENAME_DEFAULT, name
    return host_format(f"{name or NODENAME_DEFAULT}@{host or socket.gethostname()}")


class Worker:
    """One worker node: ``Worker(app, pool='threads', concurrency=4).start()``."""

    def __init__(
        self,
        app: Celery,
        *,
        hostname: str | None = None,
        concurrency: int | None = None,
        pool: str | None = None,
        queues: Sequence[str] | None = None,
        loglevel: str | int = "WARNING",
        logfile: str | None = None,
        prefetch_multiplier: int | None = None,
        without_banner: bool = False,
        install_signal_handlers: bool = True,
        beat: bool = False,
        schedule_filename: str | None = None,
        without_heartbeat: bool = False,
        heartbeat_interval: float | None = None,
        pidfile: str | None = None,
        autoscale: tuple[int, int] | None = None,
    ) -> None:
        conf = app.conf
        self.app = app
        self.hostname = default_nodename(hostname)
        self.concurrency = int(concurrency or conf.worker_concurrency or os.cpu_count() or 1)
        #: (max, min) with ``--autoscale``: the pool starts at min (at least 1) and the
        #: prefetch window is sized for max, as in Celery.
        self.autoscale = autoscale
        self.autoscaler: Autoscaler | None = None
        self._load_transport: Transport | None = None
        self._queue_names_used: list[str] = []
        if autoscale is not None:
            self.concurrency = max(1, autoscale[1])
        self.pool_name = pool or conf.worker_pool
        self.pool_cls = pool_class(self.pool_name)  # fail early on a bad -P
        self.queue_names = list(queues) if queues else None
        self.loglevel = loglevel
        self.logfile = logfile
        multiplier = conf.worker_prefetch_multiplier
        self.prefetch_multiplier = int(
            multiplier if prefetch_multiplier is None else prefetch_multiplier
        )
        self.without_banner = without_banner
        liveness_file = conf.worker_liveness_file
        #: Rewritten while the worker consumes (opt-in): what ``celeriac check`` reads. The pid
        #: file's modification time is refreshed with it, so ``check --pidfile`` works too.
        self.liveness = (
            Liveness(
                node_format(str(liveness_file), self.hostname) if liveness_file else None,
                self.hostname,
                pidfile,
            )
            if liveness_file or pidfile
            else None
        )
        self.install_signal_handlers = install_signal_handlers
        self.without_heartbeat = without_heartbeat
        self.heartbeat_interval = float(heartbeat_interval or HEARTBEAT_FREQUENCY)
        self.events: NodeEvents | None = None  # this node's events (every process)
        self.heartbeat: Heartbeat | None = None
        self.ready = threading.Event()
        self.state = WorkerState()
        self.pool: BasePool | None = None
        self.consumer: Consumer | None = None  # None when the pool consumes for itself
        self._runner: Runner | None = None  # the consumer, or a pool that consumes
        self._interruptible: RunsInMainThread | None = None  # runs tasks in the main thread
        self._signal_handlers_installed = False
        self.mailbox: Mailbox | None = None
        self.statedb: StateDB | None = None
        self.store: ClusterStore | None = None
        self.limiter: RateLimiter | None = None  # the worker's rate limits (every process)
        self.exitcode = 0
        self._signals_seen = 0
        self._stop_requests: SimpleQueue[bool] = SimpleQueue()  # warm?
        self._stop_lock = threading.Lock()
        self._pending_stop: bool | None = None  # stop() before the consumer existed: warm?
        # -B: beat in a thread of this worker (the lease keeps a second one from sending).
        self.beat = Beat(app, schedule_filename=schedule_filename) if beat else None
        self._soft_timer: threading.Timer | None = None  # the soft shutdown's deadline
        self._soft_over = threading.Event()  # the deadline passed, or a cold stop came

    # -- public ------------------------------------------------------------------------------
    def start(self) -> int:
        """Run until shut down; return the exit code (0 after a warm or cold shutdown)."""
        conf = self.app.conf
        setup_logging(
            self.loglevel,
            self.logfile,
            fmt=conf.worker_log_format,
            task_fmt=conf.worker_task_log_format,
            hijack_root=conf.worker_hijack_root_logger,
        )
        signals.celeryd_init.send(sender=self.hostname, instance=self, conf=conf, options={})
        self.app.import_default_modules()
        for line in startup_warnings(conf):  # settings naming features celeriac lacks
            logger.warning(line)
        apply_annotations(self.app)
        self._load_state()
        queues = self._queues()
        transport = self.app.connection()
        transport.open()
        backend = self.app.backend
        if isinstance(backend, OpensAtStart):
            backend.open()
        for queue in queues:
            transport.declare_queue(queue)
        signals.worker_init.send(sender=self)
        # Every pool and forked child runs one pipeline: app.add_hook() raises from here on.
        self.app.hook_list.freeze()
        # Before the pool forks: its processes share the limiter's token buckets, and the
        # events switch.
        self.limiter = RateLimiter(self.app, self.store)
        self._setup_events()
        with self._stop_lock:
            pool, runner = self._build(transport, queues, self.limiter)
            self.pool, self._runner = pool, runner
            if self._pending_stop is not None:
                runner.stop(warm=self._pending_stop)
        self._interruptible = pool if isinstance(pool, RunsInMainThread) else None
        if self.autoscale is not None:
            high, low = self.autoscale
            self.autoscaler = Autoscaler(pool, high, low, self._load)
        relay = runner.relay if isinstance(runner, Relays) else None
        query = runner.query if isinstance(runner, Queries) else None
        self._start_mailbox(runner, pool, self.limiter, relay, query)
        if not self.without_banner:
            self._print_banner(queues)
        pool.start()
        self._start_heartbeat(pool, runner)
        if self.autoscaler is not None:
            self.autoscaler.start()
        signals.celeryd_after_setup.send(sender=self.hostname, instance=self, conf=conf)
        if self.install_signal_handlers:
            self._install_signal_handlers()
        try:
            logger.info("%s ready.", self.hostname)
            signals.worker_ready.send(sender=runner)
            if self.beat is not None:
                self.beat.start_thread()
            self.ready.set()
            runner.run()
        except WorkerTerminate:  # cold shutdown interrupted a solo task
            runner.stop(warm=False)  # finish() gives its message back
        except Exception as exc:  # the broker went away, or a bug: say so, exit non-zero
            logger.critical("Unrecoverable error: %r", exc, exc_info=True)
            self.exitcode = 1
            runner.stop(warm=False)
        finally:
            self._shutdown(transport, runner)
        return self.exitcode

    def stop(self, warm: bool = True) -> None:
        """Request a shutdown from any thread (warm: let running tasks finish, for at most
        ``worker_soft_shutdown_timeout`` seconds when it is set)."""
        if warm:
            self._arm_soft_shutdown()
        else:
            self._soft_over.set()
        with self._stop_lock:
            if self._runner is None:
                self._pending_stop = (
                    warm if self._pending_stop is None else (self._pending_stop and warm)
                )
                return
            self._runner.stop(warm=warm)

    @property
    def soft_shutdown_timeout(self) -> float:
        return float(self.app.conf.worker_soft_shutdown_timeout or 0.0)

    def _arm_soft_shutdown(self) -> None:
        """Celery 5.5's soft shutdown: running tasks get ``worker_soft_shutdown_timeout``
        seconds, then a cold stop cuts them short and their messages go back to the broker."""
        timeout = self.soft_shutdown_timeout
        if timeout <= 0:
            return
        with self._stop_lock:
            if self._soft_timer is not None:
                return
            self._soft_timer = threading.Timer(timeout, self._soft_deadline)
            self._soft_timer.daemon = True
            self._soft_timer.start()
        logger.warning("Initiating Soft Shutdown, terminating in %s seconds", timeout)

    def _soft_deadline(self) -> None:
        if self._soft_over.is_set():
            return
        logger.warning(
            "Soft shutdown timeout (%ss) reached: running tasks are cut short and their "
            "messages go back to the broker",
            self.soft_shutdown_timeout,
        )
        self._soft_over.set()
        if self._signal_handlers_installed:
            # As a second signal: the cold stop also interrupts a task in the main thread.
            os.kill(os.getpid(), signal.SIGQUIT)
        else:
            self.stop(warm=False)

    def _wait_soft_shutdown_on_idle(self) -> None:
        """``worker_enable_soft_shutdown_on_idle``: the whole timeout, even with no task."""
        if self._soft_timer is not None and self.app.conf.worker_enable_soft_shutdown_on_idle:
            self._soft_over.wait(self.soft_shutdown_timeout)

    # -- building ----------------------------------------------------------------------------
    def _queues(self) -> list[Queue]:
        if self.queue_names:
            return [self.app.router.queue(name) for name in self.queue_names]
        return self.app.default_queues()

    def _load_state(self) -> None:
        """The cluster store, and revoked ids from ``--statedb`` (kept across restarts)."""
        try:
            self.store = cluster_store_for(self.app)
        except Exception as exc:  # a bad URL, or redis-py missing: say so, run without it
            logger.warning("No cluster store (%s); cluster rate limits are per worker", exc)
        path = self.app.conf.worker_state_db
        if path:
            self.statedb = StateDB(node_format(str(path), self.hostname))
            loaded = self.statedb.load(self.state)
            logger.info("Loaded %d revoked task id(s) from %s", loaded, self.statedb.path)

    def _start_mailbox(
        self,
        sweeper: Sweeper,
        pool: BasePool,
        limiter: RateLimiter,
        relay: Relay | None,
        query: Query | None,
    ) -> None:
        if not self.app.conf.worker_enable_remote_control:
            return
        ctx = ControlContext(
            app=self.app,
            hostname=self.hostname,
            state=self.state,
            consumer=sweeper,
            pool=pool,
            limiter=limiter,
            statedb=self.statedb,
            store=self.store,
            relay=relay,
            events=self.events,
            beat_now=self._beat_now,
            query=query,
            shutdown=self.stop,
            autoscaler=self.autoscaler,
        )
        self.mailbox = Mailbox(ctx)
        self.mailbox.start()

    def _build(
        self, transport: Transport, queues: list[Queue], limiter: RateLimiter
    ) -> tuple[BasePool, Runner]:
        """The pool, and what runs in the main thread: the consumer feeding the pool, or the
        pool itself where its processes consume for themselves (prefork on a broker that
        allows it, unless ``worker_direct_consume`` is off)."""
        names = [q.name for q in queues]
        self._queue_names_used = names
        consuming = CONSUMING_POOLS.get(self.pool_name)
        if consuming and transport.direct_consume and self.app.conf.worker_direct_consume:
            pool = consuming(
                self.app,
                self.concurrency,
                hostname=self.hostname,
                state=self.state,
                transport=transport,
                queues=names,
                prefetch_multiplier=self.prefetch_multiplier,
                buckets=limiter.buckets,
                store=self.store,
                liveness=self.liveness,
            )
            return pool, pool
        fed = self.pool_cls(
            self.app, self.concurrency, on_result=self._on_result, hostname=self.hostname
        )
        self.consumer = Consumer(
            self.app,
            transport,
            fed,
            queues=names,
            prefetch_limit=self._max_concurrency * self.prefetch_multiplier,
            state=self.state,
            limiter=limiter,
            events=self.events,
            liveness=self.liveness,
        )
        self.consumer.one_job_per_slot = self.autoscale is not None
        return fed, self.consumer

    def _setup_events(self) -> None:
        """This node's events, registered for every process and thread running its tasks:
        task events with ``-E`` (``worker_send_task_events``), and the heartbeat."""
        conf = self.app.conf
        # Made even when nothing is sent yet (it connects on first use): the enable_events
        # control command may turn task events on later.
        self.events = NodeEvents(
            self.hostname,
            self.app.connection,
            task_events=bool(conf.worker_send_task_events),
            serializer=conf.event_serializer,
            exchange=conf.event_exchange,
        )
        register_node(self.events)

    def _start_heartbeat(self, pool: BasePool, runner: Runner) -> None:
        if self.events is None or self.without_heartbeat:
            return
        consumer = self.consumer

        def active() -> int:
            if consumer is None:
                return len(pool.running_ids())
            return len(self.state.active)

        query = runner.query if isinstance(runner, Queries) else None

        def processed() -> int:
            done = sum(self.state.total_count.values())
            if query is not None:  # children that consume count what they ran
                for answer in query("stats", {}, HEARTBEAT_QUERY_TIMEOUT):
                    if isinstance(answer, dict):
                        done += sum((answer.get("total") or {}).values())
            return done

        self.heartbeat = Heartbeat(
            self.events, active=active, processed=processed, interval=self.heartbeat_interval
        )
        self.heartbeat.start()

    def _beat_now(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.beat_now()

    @property
    def _max_concurrency(self) -> int:
        return self.autoscale[0] if self.autoscale is not None else self.concurrency

    def _load(self) -> int:
        """The autoscaler's ``qty``: tasks held (received or running); where the children
        consume for themselves, the tasks they run plus the messages waiting in the queues."""
        if self.consumer is not None:
            reserved, active = self.state.snapshot()
            return len(reserved) + len(active)
        pool = self.pool
        running = len(pool.running_ids()) if pool is not None else 0
        if self._load_transport is None:  # its own connection: this runs in another thread
            self._load_transport = self.app.connection()
            self._load_transport.open()
        waiting = sum(self._load_transport.size(name) for name in self._queue_names_used)
        return running + waiting

    def _on_result(self, result: PoolReport) -> None:
        consumer = self.consumer
        if consumer is not None:
            consumer.on_result(result)

    def _print_banner(self, queues: list[Queue]) -> None:
        with_tasks = _level_no(self.loglevel) <= logging.INFO
        text = banner(
            self.app,
            hostname=self.hostname,
            concurrency=self.concurrency,
            pool=self.pool_name,
            queues=queues,
            with_tasks=with_tasks,
        )
        print(text, file=sys.stdout, flush=True)

    # -- shutdown ----------------------------------------------------------------------------
    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        # The handler takes no lock (a second signal may interrupt the first handler, or the
        # main thread inside a lock): it hands the request to this thread through a
        # SimpleQueue, whose put() is reentrant.
        threading.Thread(target=self._serve_stop_requests, name="signals", daemon=True).start()
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGQUIT, self._on_signal)
        self._signal_handlers_installed = True
        # As Celery's "cry" handler: SIGUSR1 prints every thread's stack (to stderr).
        with contextlib.suppress(AttributeError, ValueError, RuntimeError, OSError):
            faulthandler.register(signal.SIGUSR1, all_threads=True)  # fails without a stderr

    def _serve_stop_requests(self) -> None:
        while True:
            self.stop(warm=self._stop_requests.get())

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals_seen += 1
        if signum == signal.SIGTERM and os.environ.get("REMAP_SIGTERM") == "SIGQUIT":
            signum = signal.SIGQUIT  # Celery's (billiard's) switch: SIGTERM as a cold shutdown
        # A first SIGQUIT is cold, unless a soft shutdown first lets running tasks finish.
        soft = self.soft_shutdown_timeout > 0
        warm = (
            self._signals_seen == 1
            and (signum != signal.SIGQUIT or soft)
            and not self._soft_over.is_set()  # the soft shutdown's deadline sent it
        )
        # os.write, not print: the handler may interrupt a print or a log call in progress.
        how = "Warm" if warm else "Cold"
        os.write(2, f"\nworker: {how} shutdown (MainProcess)\n".encode())
        self._stop_requests.put(warm)
        interruptible = self._interruptible
        if not warm and interruptible is not None and interruptible.executing:
            raise WorkerTerminate(0)

    def _shutdown(self, transport: Transport, runner: Runner) -> None:
        how = "Cold" if runner.cold else "Warm"
        if self.beat is not None:
            self.beat.stop()
            self.beat.join(5.0)
        signals.worker_shutting_down.send(
            sender=self.hostname, sig=None, how=how, exitcode=self.exitcode
        )
        if self.autoscaler is not None:
            self.autoscaler.stop()
        try:
            self._wait_soft_shutdown_on_idle()
            self.exitcode = self.exitcode or runner.finish()
        finally:
            if self._soft_timer is not None:
                self._soft_over.set()
                self._soft_timer.cancel()
            self._close(transport)

    def _close(self, transport: Transport) -> None:
        if self.liveness is not None:
            self.liveness.remove()
        if self._load_transport is not None:
            self._load_transport.close()
        if self.mailbox is not None:
            self.mailbox.stop()
        if self.heartbeat is not None:
            self.heartbeat.stop()  # worker-offline
        if self.events is not None:
            self.events.close()
            unregister_node(self.events)
        if self.statedb is not None:
            self.statedb.save(self.state)
        if self.store is not None:
            self.store.close()
        if self.limiter is not None:
            self.limiter.close()
        transport.close()
        signals.worker_shutdown.send(sender=self)


def node_format(text: str, nodename: str, index: int | None = 0) -> str:
    """Celery's node expansion of paths: ``%n`` name, ``%h`` host, ``%d`` domain, ``%i`` the
    process index (0: the main process), ``%I`` the same as ``-<index>`` (empty for 0).
    ``index=None`` leaves ``%i`` / ``%I`` for each process to expand (the log file)."""
    name, _, host = nodename.partition("@")
    domain = host.partition(".")[2]
    text = text.replace("%n", name).replace("%h", host or nodename).replace("%d", domain)
    return text if index is None else process_format(text, index)


def _level_no(level: str | int) -> int:
    try:
        return parse_loglevel(level)
    except ValueError:
        return logging.WARNING


__all__ = ["Worker", "WorkerTerminate", "default_nodename", "host_format", "node_format"]
