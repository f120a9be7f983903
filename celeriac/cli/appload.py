"""``-A`` resolution: turn ``proj``, ``proj.celery:app``, ``proj:create_app`` into an app.

The forms Celery's ``find_app`` accepts, in its order:

- ``module:attr``: ``attr`` may be dotted, and may be a factory called without arguments;
- ``module.attr``: the attribute if the module has it, else the submodule ``module.attr``;
- ``module``: its ``app`` or ``celery`` attribute, else (for a package) its ``celery``
  submodule, else the one Celery instance defined in it.

Errors are :class:`AppLoadError` values whose message is one clear line.
"""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType
from typing import Any

from celeriac.app.base import Celery

_PREFIX = "Unable to load celery application."


class AppLoadError(Exception):
    """``-A`` could not be resolved; ``str()`` is the one-line message for the user."""


class AppModuleNotFound(AppLoadError):
    """The module named by ``-A`` (or a package on its path) does not exist."""

    def __init__(self, module: str) -> None:
        self.module = module
        super().__init__(
            f"{_PREFIX} The module {module} was not found. Check that you are in the right "
            "directory (or pass --workdir) and that PYTHONPATH includes the project."
        )


class AppImportFailed(AppLoadError):
    """Importing the module raised; ``error`` is the exception (for ``--debug``)."""

    def __init__(self, module: str, error: BaseException) -> None:
        self.module = module
        self.error = error
        super().__init__(
            f"{_PREFIX} While trying to load the module {module} the following error "
            f"occurred: {error!r} (pass --debug or set CELERIAC_TRACEBACK=1 for the traceback)"
        )


class AppMissing(AppLoadError):
    """The module exists but holds no app under the given (or a usual) name."""


def find_app(spec: str) -> Celery:
    """The Celery app named by ``spec`` (see the module docstring for the accepted forms)."""
    _cwd_on_path()
    if ":" in spec:
        module_name, _, attr = spec.partition(":")
        module = _import(module_name)
        return _as_app(_getattr_path(module, module_name, attr), spec)
    found = _resolve_dotted(spec)
    if isinstance(found, ModuleType):
        return _app_in_module(found, spec)
    return _as_app(found, spec)


def _cwd_on_path() -> None:
    # A console script does not have the working directory on sys.path; `python -m` has ''.
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (name == missing or name.startswith(missing + ".")):
            raise AppModuleNotFound(missing) from None
        raise AppImportFailed(name, exc) from exc
    except Exception as exc:
        raise AppImportFailed(name, exc) from exc


def _resolve_dotted(spec: str) -> Any:
    """``a.b.c``: attribute ``c`` of module ``a.b`` if it exists, else module ``a.b.c``."""
    parent, _, attr = spec.rpartition(".")
    if not parent:
        return _import(spec)
    module = _import(parent)
    if hasattr(module, attr):
        return getattr(module, attr)
    try:
        return _import(spec)
    except AppModuleNotFound as exc:
        if exc.module != spec:
            raise
        raise AppMissing(f"{_PREFIX} Module '{parent}' has no attribute '{attr}'.") from None


def _getattr_path(module: ModuleType, module_name: str, path: str) -> Any:
    found: Any = module
    walked = module_name
    for part in path.split("."):
        if not hasattr(found, part):
            raise AppMissing(f"{_PREFIX} Module '{walked}' has no attribute '{part}'.")
        found = getattr(found, part)
        walked = f"{walked}.{part}"
    return found


def _app_in_module(module: ModuleType, spec: str) -> Celery:
    for name in ("app", "celery"):
        candidate = getattr(module, name, None)
        if isinstance(candidate, Celery):
            return candidate
    if hasattr(module, "__path__"):
        # A package: proj -> proj.celery, the layout Celery's docs recommend.
        try:
            submodule = _import(f"{spec}.celery")
        except AppModuleNotFound as exc:
            if exc.module != f"{spec}.celery":
                raise
        else:
            return _app_in_module(submodule, f"{spec}.celery")
    instances = {id(v): (k, v) for k, v in vars(module).items() if isinstance(v, Celery)}
    if len(instances) == 1:
        return next(iter(instances.values()))[1]
    if instances:
        names = ", ".join(sorted(k for k, _ in instances.values()))
        raise AppMissing(
            f"{_PREFIX} Module '{spec}' defines several Celery apps ({names}); "
            f"choose one with -A {spec}:NAME."
        )
    raise AppMissing(
        f"{_PREFIX} Module '{spec}' has no attribute 'app' or 'celery' and defines no Celery "
        f"app; name it with -A {spec}:NAME."
    )


def _as_app(found: Any, spec: str) -> Celery:
    if not isinstance(found, Celery) and callable(found) and not isinstance(found, type):
        # A factory (Flask style `create_app`): call it once, without arguments.
        try:
            found = found()
        except Exception as exc:
            raise AppImportFailed(spec, exc) from exc
    if not isinstance(found, Celery):
        raise AppMissing(
            f"{_PREFIX} {spec!r} is a {type(found).__name__}, not a Celery application."
        )
    return found


__all__ = ["AppImportFailed", "AppLoadError", "AppMissing", "AppModuleNotFound", "find_app"]
