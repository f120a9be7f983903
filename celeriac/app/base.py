"""``Celery``: the application object. It owns the settings, the task registry, the
producer and the result backend, and builds each of them in plain code."""

from __future__ import annotations

import functools
import importlib
import os
import socket
import sys
import threading
import types
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone, tzinfo
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload
from zoneinfo import ZoneInfo

from celeriac.app.builtins import add_builtin_tasks
from celeriac.app.config import OLD_NAMES, SETTINGS_BY_NAME, Settings
from celeriac.app.control import Control
from celeriac.app.events import Events
from celeriac.app.hooks import HookList, provided_hooks
from celeriac.app.producer import Producer
from celeriac.app.registry import SHARED_TASKS, TaskRegistry, gen_task_name, import_related
from celeriac.app.report import bugreport
from celeriac.app.routing import RouterTable
from celeriac.app.task import Task as BaseTask
from celeriac.backends.schemes import backend_from_url
from celeriac.canvas import Signature, signature
from celeriac.drivers.urls import mask_url
from celeriac.exceptions import ImproperlyConfigured
from celeriac.protocol.entities import Queue
from celeriac.protocol.options import SendOptions
from celeriac.result import AsyncResult
from celeriac.signals import Signal
from celeriac.transports.schemes import transport_from_url
from celeriac.utils import current, forksafe
from celeriac.utils.current import add_to_parent
from celeriac.utils.time import local_zone

if TYPE_CHECKING:
    from typing import Concatenate, ParamSpec

    from celeriac.backends.base import ResultBackend
    from celeriac.transports.base import Transport

    P = ParamSpec("P")

R = TypeVar("R")
TaskT = TypeVar("TaskT", bound=BaseTask[Any, Any])

# Environment variables Celery itself reads at app creation (read once, here only).
_ENV_SETTINGS = {"CELERY_BROKER_URL": "broker_url", "CELERY_RESULT_BACKEND": "result_backend"}


class Celery:
    """The application: ``Celery('proj', broker=..., backend=..., include=[...])``."""

    Task: type[BaseTask[Any, Any]] = BaseTask

    def __init__(
        self,
        main: str | None = None,
        *,
        broker: str | None = None,
        backend: str | None = None,
        include: Sequence[str] | None = None,
        config_source: Any = None,
        set_as_current: bool = True,
        task_cls: type[BaseTask[Any, Any]] | None = None,
        namespace: str | None = None,
        hooks: Iterable[Any] | None = None,
        **settings: Any,
    ) -> None:
        self.main = main
        # Celery's app signals (sender=app): configuration read, tasks finalized.
        self.on_after_configure = Signal("app.on_after_configure", frozenset({"source"}))
        self.on_after_finalize = Signal("app.on_after_finalize")
        self._configured = False
        self._pending_periodic_tasks: list[tuple[str, dict[str, Any], str | None]] = []
        self.conf = Settings()
        self.tasks = TaskRegistry()
        if task_cls is not None:
            self.Task = task_cls
        for env, name in _ENV_SETTINGS.items():
            if os.environ.get(env):
                self.conf[name] = os.environ[env]
        if config_source is not None:
            self.config_from_object(config_source, namespace=namespace)
        if broker is not None:
            self.conf.broker_url = broker
        if backend is not None:
            self.conf.result_backend = backend
        if include:
            self.conf.include = list(include)
        self.conf.update(settings)
        self.producer = Producer(self)
        self._backend: ResultBackend | None = None
        self._backend_pid = 0
        self._backend_lock = threading.Lock()
        self._router: tuple[tuple[Any, ...], RouterTable] | None = None
        self._autodiscover: list[tuple[Callable[[], Iterable[str]] | Iterable[str], str]] = []
        self._finalized = False
        self.user_options: dict[str, Any] = {}
        self.hostname = socket.gethostname()
        self._oid = str(uuid.uuid4())
        self._thread_oids: dict[tuple[int, int], str] = {}
        # The extras' hooks first (their providers), then the caller's, in the given order.
        self.hook_list = HookList([*provided_hooks(self), *(hooks or ())])
        add_builtin_tasks(self)
        current.set_default_app(self)
        if set_as_current:
            current.set_current_app(self)

    def __repr__(self) -> str:
        return f"<Celery {self.main or '__main__'} at {id(self):#x}>"

    # -- hooks -------------------------------------------------------------------------------
    @property
    def hooks(self) -> tuple[Any, ...]:
        """The app's hooks in pipeline order (read-only; see :meth:`add_hook`)."""
        return self.hook_list.view()

    def add_hook(self, hook: Any, *, before: type | None = None, after: type | None = None) -> None:
        """Add ``hook`` (a :class:`celeriac.execution.hooks.Hook`) to every run of this app's
        tasks: last, or just before / after the app's hook of class ``before`` / ``after``.

        Raises:
            ValueError: no hook of the anchor's class is in :attr:`hooks`.
            RuntimeError: a worker has started with this app (its pipeline is fixed).
        """
        self.hook_list.add(hook, before=before, after=after)

    # -- configuration -----------------------------------------------------------------------
    def config_from_object(
        self, obj: Any, *, silent: bool = False, force: bool = True, namespace: str | None = None
    ) -> None:
        """Read settings from a module name, ``'module:attr'``, or any object or class.

        With ``namespace='CELERY'`` only keys starting with ``CELERY_`` are read, the
        prefix stripped (``CELERY_BROKER_URL`` -> ``broker_url``), as Django projects use it.
        """
        try:
            source = _resolve_object(obj) if isinstance(obj, str) else obj
        except ImportError:
            if silent:
                return
            raise
        is_map = isinstance(source, Mapping)
        keys = source.keys() if is_map else dir(source)
        for key in keys:
            name = _config_key(key, namespace)
            if name is None:
                continue
            value = source[key] if is_map else getattr(source, key)
            # Imports in a config module (``import os``, ``from datetime import timedelta``)
            # are not settings.
            if isinstance(value, (type, types.ModuleType, types.FunctionType)):
                continue
            self.conf[name] = value

    def config_from_envvar(self, variable_name: str, *, silent: bool = False) -> bool:
        """Read settings from the module named by an environment variable."""
        module = os.environ.get(variable_name)
        if not module:
            if silent:
                return False
            raise ImproperlyConfigured(
                f"The environment variable {variable_name!r} is not set; set it to the name "
                "of a configuration module (for example 'celeryconfig')."
            )
        self.config_from_object(module, silent=silent)
        return True

    # -- tasks -------------------------------------------------------------------------------
    @overload
    def task(self, fun: Callable[P, R], /) -> BaseTask[P, R]: ...

    @overload
    def task(
        self, *, bind: Literal[True], **options: Any
    ) -> Callable[[Callable[Concatenate[Any, P], R]], BaseTask[P, R]]: ...

    @overload
    def task(
        self, *, bind: Literal[False] = ..., **options: Any
    ) -> Callable[[Callable[P, R]], BaseTask[P, R]]: ...

    def task(  # type: ignore[misc]  # mypy cannot match **options against the overloads
        self, fun: Callable[..., Any] | None = None, /, *, bind: bool = False, **options: Any
    ) -> Any:
        """Register a function as a task: ``@app.task`` or ``@app.task(name=..., bind=True)``."""
        options["bind"] = bind
        if fun is not None:
            return self._make_task(fun, options)

        def decorator(f: Callable[..., Any]) -> BaseTask[Any, Any]:
            return self._make_task(f, options)

        return decorator

    def _make_task(self, fun: Callable[..., Any], options: dict[str, Any]) -> BaseTask[Any, Any]:
        options = dict(options)
        base: type[BaseTask[Any, Any]] = options.pop("base", None) or self.Task
        name = options.pop("name", None) or gen_task_name(fun.__module__, fun.__name__, self.main)
        options.pop("filter", None)
        existing = dict.get(self.tasks, name)
        if existing is not None and getattr(existing, "__wrapped__", None) is fun:
            return existing
        task = base(fun, app=self, name=name, **options)
        self.tasks.register(task)
        return task

    def register_task(self, task: TaskT) -> TaskT:
        """Register a task instance (class-based tasks: ``app.register_task(MyTask())``)."""
        if not task.name:
            cls = type(task)
            task.name = gen_task_name(cls.__module__, cls.__name__, self.main)
        task.app = self
        self.tasks.register(task)
        return task

    def setup_security(
        self,
        allowed_serializers: Iterable[str] | None = None,
        key: str | None = None,
        key_password: str | bytes | None = None,
        cert: str | None = None,
        store: str | None = None,
        digest: str | None = None,
        serializer: str = "json",
    ) -> None:
        """Sign every task message and verify every one received (Celery's message signing).

        Registers the ``auth`` serializer from ``key`` / ``cert`` / ``store`` (default: the
        ``security_key``, ``security_certificate``, ``security_cert_store`` settings) and
        disables every other serializer but ``allowed_serializers`` where no accept list
        applies. Needs ``task_serializer = 'auth'`` and ``accept_content = ['auth']``, and
        the ``cryptography`` package (``pip install 'celeriac[security]'``). Process-wide,
        as in Celery.
        """
        # lazy: celeriac.security needs cryptography, an optional extra
        from celeriac.security import setup_security

        setup_security(
            allowed_serializers, key, key_password, cert, store, digest, serializer, app=self
        )

    def autodiscover_tasks(
        self,
        packages: Iterable[str] | Callable[[], Iterable[str]] | None = None,
        related_name: str = "tasks",
        force: bool = False,
    ) -> None:
        """Import ``<package>.tasks`` for each package (now with ``force``, else at finalize)."""
        entry = (packages or [], related_name)
        if force or self._finalized:
            self._discover(*entry)
        else:
            self._autodiscover.append(entry)

    def _discover(
        self, packages: Iterable[str] | Callable[[], Iterable[str]], related_name: str
    ) -> None:
        names = packages() if callable(packages) else packages
        for package in names:
            import_related(package, related_name)

    def import_default_modules(self) -> None:
        """Import ``imports`` and ``include`` modules, then run pending autodiscovery."""
        for module in [*self.conf.imports, *self.conf.include]:
            importlib.import_module(module)
        self.finalize()

    def finalize(self) -> None:
        if self._finalized:
            return
        self._finalized = True
        self.configure()
        pending, self._autodiscover = self._autodiscover, []
        for packages, related_name in pending:
            self._discover(packages, related_name)
        self.on_after_finalize.send(sender=self)

    def configure(self) -> None:
        """Send ``on_after_configure`` once (at the first finalize: the worker and beat
        finalize at start), then add the periodic tasks registered before it."""
        if self._configured:
            return
        self._configured = True
        self.on_after_configure.send(sender=self, source=self.conf)
        pending, self._pending_periodic_tasks = self._pending_periodic_tasks, []
        for key, entry, name in pending:
            self._add_periodic_task(key, entry, name)

    # -- sending -----------------------------------------------------------------------------
    def send_task(
        self,
        name: str,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        *,
        _options: SendOptions | None = None,
        _task: BaseTask[Any, Any] | None = None,
        **options: Any,
    ) -> AsyncResult[Any]:
        """Send a task by name (it need not be registered here)."""
        opts = _options if _options is not None else SendOptions.from_kwargs(options)
        task_id = self.producer.send(name, args, kwargs, opts, _task)
        result: AsyncResult[Any] = AsyncResult(task_id, app=self, task_name=name)
        if opts.add_to_parent:
            add_to_parent(result)
        return result

    def send_many(self, signatures: Iterable[Signature], **options: Any) -> list[Any]:
        """Send every signature, in order, in pipelined batches: one broker call per
        ``Producer.batch_size`` messages instead of one round trip each (a Redis pipeline,
        one AMQP batch with publisher confirms, one transaction on SQLite or PostgreSQL).

        ``options`` are ``apply_async`` options for every one of them. Returns what each
        ``apply_async`` returns (an ``AsyncResult``; a ``GroupResult`` for a group), in the
        order given. The messages are byte for byte those of one ``apply_async`` each.
        ``group(...).apply_async()`` and ``Task.chunks(...)`` publish this way too.
        """
        sigs = list(signatures)
        for index, sig in enumerate(sigs):
            if not isinstance(sig, Signature):
                raise TypeError(
                    f"send_many() takes signatures; item {index} is a {type(sig).__name__}: "
                    "make one with task.s(*args, **kwargs) or app.signature(name, args=...)"
                )
        with self.producer.batch():
            return [sig.apply_async(**options) for sig in sigs]

    def signature(self, *args: Any, **kwargs: Any) -> Signature:
        """Celery's ``app.signature('tasks.add', args=(2, 2))`` (or of a signature's dict)."""
        kwargs.setdefault("app", self)
        return signature(*args, **kwargs)

    def add_periodic_task(
        self,
        schedule: Any,
        sig: Signature | str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        name: str | None = None,
        **opts: Any,
    ) -> str:
        """Add ``sig`` to ``beat_schedule`` under ``name`` (else its repr), as Celery does:
        ``schedule`` is seconds, a timedelta, ``crontab(...)`` or ``solar(...)``; ``opts``
        are its apply_async options. Returns the entry's name."""
        if isinstance(sig, str):
            sig = self.signature(sig, args=tuple(args), kwargs=dict(kwargs or {}))
        elif args or kwargs:
            sig = sig.clone(args, kwargs)
        key = name or repr(sig)
        entry = {
            "schedule": schedule,
            "task": sig.name,
            "args": tuple(sig.args),
            "kwargs": dict(sig.kwargs),
            "options": {**dict(sig.options), **opts},
        }
        if self._configured:
            self._add_periodic_task(key, entry, name)
        else:
            self._pending_periodic_tasks.append((key, entry, name))
        return key

    def _add_periodic_task(self, key: str, entry: dict[str, Any], name: str | None) -> None:
        schedule = dict(self.conf.beat_schedule)
        schedule[key] = entry
        self.conf.beat_schedule = schedule

    @property
    def router(self) -> RouterTable:
        conf = self.conf
        # Built again after any setting changed (a routes list mutated in place is not seen,
        # as before: assign a new one).
        key = (id(conf), conf.revision)
        if self._router is None or self._router[0] != key:
            self._router = (key, RouterTable(conf))
        return self._router[1]

    def default_queues(self) -> list[Queue]:
        """The queues a worker consumes when no ``-Q`` is given."""
        if self.conf.task_queues:
            return list(self.conf.task_queues)
        return [self.router.queue(self.conf.task_default_queue)]

    # -- connections -------------------------------------------------------------------------
    def connection(self, **transport_options: Any) -> Transport:
        """A new, unopened transport for the configured broker (one per process);
        ``transport_options`` override ``broker_transport_options``."""
        conf = self.conf
        options = conf.broker_options(**transport_options)
        return transport_from_url(conf.broker_url, options, default_path=conf.sqlite_broker_path)

    connection_for_write = connection
    connection_for_read = connection

    def broker_url_display(self) -> str:
        url = self.conf.broker_url
        return mask_url(url) if url else f"sqlite:///{self.conf.sqlite_broker_path}"

    def backend_url(self) -> str | None:
        """The result backend URL in force (the embedded SQLite file when nothing is set)."""
        if self.conf.result_backend:
            return str(self.conf.result_backend)
        if not self.conf.broker_url:
            return f"db+sqlite:///{self.conf.sqlite_result_path}"
        return None

    @property
    def backend(self) -> ResultBackend:
        """This process's result backend (re-created after ``fork``)."""
        pid = forksafe.pid()
        if self._backend is None or self._backend_pid != pid:
            with self._backend_lock:
                if self._backend is None or self._backend_pid != pid:
                    self._backend = self.make_backend()
                    self._backend_pid = pid
        return self._backend

    def make_backend(self) -> ResultBackend:
        backend = backend_from_url(self.backend_url(), self.conf)
        backend.app = self
        return backend

    @functools.cached_property
    def control(self) -> Control:
        """Remote control of the workers: ``app.control.revoke(task_id)``."""
        return Control(self)

    @functools.cached_property
    def events(self) -> Events:
        """Events: ``app.events.Receiver(...)``, ``.Dispatcher(...)``, ``.State()``."""
        return Events(self)

    def AsyncResult(self, task_id: str, **kwargs: Any) -> AsyncResult[Any]:
        return AsyncResult(task_id, app=self, **kwargs)

    def close(self) -> None:
        """Close the producer's connection and the result backend of this process."""
        self.producer.close()
        if self._backend is not None and self._backend_pid == forksafe.pid():
            self._backend.close()
        self._backend = None

    # -- the command line --------------------------------------------------------------------
    def start(self, argv: Sequence[str] | None = None) -> int:
        """Run the ``celeriac`` command line with this app and return its exit code.

        ``argv`` defaults to ``sys.argv[1:]``, so a module ending in
        ``app.start()`` runs as ``python -m proj.celery worker -l INFO``; ``-A`` is not
        needed (and wins when given).
        """
        # lazy: the command line sits above the app; Celery's app.start() is its one way in
        from celeriac.cli.main import main

        return main(list(sys.argv[1:] if argv is None else argv), app=self)

    def worker_main(self, argv: Sequence[str] | None = None) -> int:
        """Run ``celeriac worker`` with this app: ``app.worker_main(["worker", "-l", "INFO"])``.

        ``argv`` (default ``sys.argv[1:]``) must name the ``worker`` command, as in Celery.
        """
        args = list(sys.argv[1:] if argv is None else argv)
        if "worker" not in args:
            raise ValueError(
                "The worker sub-command must be specified in argv "
                "(for example app.worker_main(['worker', '-l', 'INFO'])); "
                "use app.start() to run other commands."
            )
        return self.start(args)

    def bugreport(self) -> str:
        """What ``celeriac report`` prints: versions, transport, results, settings (masked)."""
        return bugreport(self)

    # -- time --------------------------------------------------------------------------------
    @property
    def timezone(self) -> tzinfo:
        """The app time zone: ``timezone`` if set, else UTC (with ``enable_utc``, the
        default) or the system's local zone (``enable_utc = False``), as in Celery."""
        name = self.conf.timezone
        if not name:
            return timezone.utc if self.conf.enable_utc else local_zone()
        if isinstance(name, tzinfo):
            return name
        return ZoneInfo(str(name))

    def localize(self, value: datetime) -> datetime:
        """Make ``value`` aware in the app time zone (naive values are taken as UTC)."""
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(self.timezone)

    def now(self) -> datetime:
        return datetime.now(self.timezone)

    @property
    def thread_oid(self) -> str:
        """Celery's ``reply_to``: a stable id per process, thread and app (computed once:
        every ``delay()`` reads it)."""
        key = (forksafe.pid(), threading.get_ident())
        oid = self._thread_oids.get(key)
        if oid is None:
            name = f"{self._oid}-{key[0]}-{key[1]}"
            oid = self._thread_oids[key] = str(uuid.uuid3(uuid.NAMESPACE_OID, name))
        return oid


def _resolve_object(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError:
        if attr or "." not in module_name:
            raise
        module_name, _, attr = module_name.rpartition(".")
        obj = importlib.import_module(module_name)
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj


def _config_key(key: str, namespace: str | None) -> str | None:
    if namespace:
        prefix = namespace.rstrip("_") + "_"
        if not key.startswith(prefix):
            return None
        key = key[len(prefix) :].lower()
        return key if key in SETTINGS_BY_NAME or key.upper() in OLD_NAMES else None
    if key.startswith("_"):
        return None
    if key.islower():
        return key
    return OLD_NAMES.get(key)


def shared_task(*args: Any, **options: Any) -> Any:
    """Like ``@app.task`` but not bound to one app: every app (and the current one) sees it."""

    def decorator(fun: Callable[..., Any]) -> BaseTask[Any, Any]:
        opts = dict(options)
        base: type[BaseTask[Any, Any]] = opts.pop("base", None) or BaseTask
        name = opts.pop("name", None) or gen_task_name(fun.__module__, fun.__name__, None)
        existing = SHARED_TASKS.get(name)
        if existing is not None and getattr(existing, "__wrapped__", None) is fun:
            return existing
        task = base(fun, app=None, name=name, **opts)
        SHARED_TASKS[name] = task
        return task

    if len(args) == 1 and callable(args[0]) and not options:
        return decorator(args[0])
    return decorator


current.use_default_factory(lambda: Celery("default"))

__all__ = ["Celery", "shared_task"]
