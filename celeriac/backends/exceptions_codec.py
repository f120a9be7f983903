"""Exceptions as result values: Celery's ``{"exc_type", "exc_message", "exc_module"}`` form.

A task's exception travels to the client as a small dict (any serializer but pickle) naming
the class and carrying its args. Decoding never imports a module: like Celery, it only looks
in modules the reading process has already imported (``sys.modules``), so stored data can
not make a client run a module's import-time code. A class it cannot find is replaced by a
subclass of ``Exception`` with the same name and module, and anything that is not an
exception class is refused with ``SecurityError``.
"""

from __future__ import annotations

import pickle
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from celeriac.exceptions import SecurityError

# Celery's exceptions live in celery.exceptions on the wire; ours are the same classes under
# our own module name, so the two names are translated in both directions.
CELERY_EXCEPTIONS_MODULE = "celery.exceptions"
OUR_EXCEPTIONS_MODULE = "celeriac.exceptions"

_substitutes: dict[tuple[str, str], type[Exception]] = {}
_substitutes_lock = threading.Lock()


def exception_to_dict(exc: BaseException, encodable: Callable[[Any], bool]) -> dict[str, Any]:
    """Celery's JSON form of ``exc``; args that ``encodable`` rejects become their repr."""
    cls = type(exc)
    module = cls.__module__
    if module == OUR_EXCEPTIONS_MODULE:
        module = CELERY_EXCEPTIONS_MODULE
    return {
        "exc_type": getattr(cls, "__qualname__", cls.__name__),
        "exc_message": _serializable_args(exc.args, encodable),
        "exc_module": module,
    }


def _serializable_args(args: Iterable[Any], encodable: Callable[[Any], bool]) -> list[Any]:
    return [arg if encodable(arg) else _safe_repr(arg) for arg in args]


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:  # a broken __repr__ must not lose the whole failure
        return f"<unrepresentable {type(value).__name__} object>"


def pickleable_exception(
    exc: BaseException, encodable: Callable[[Any], bool]
) -> BaseException | dict[str, Any]:
    """``exc`` itself when it survives a pickle round trip, else the nearest base that does.

    With the pickle serializer Celery stores the exception object; an exception that can
    not be pickled falls back to the dict form (which any reader understands) rather than
    failing the result write.
    """
    for candidate in _self_and_bases(exc):
        try:
            pickle.loads(pickle.dumps(candidate))
        except Exception:  # any failure means "try the next candidate"
            continue
        return candidate
    return exception_to_dict(exc, encodable)


def _self_and_bases(exc: BaseException) -> Iterable[BaseException]:
    yield exc
    for base in type(exc).__mro__[1:]:
        if base in (Exception, BaseException, object):
            return
        try:
            yield base(*exc.args)
        except Exception:  # a base whose constructor wants other args: skip it
            continue


def dict_to_exception(value: dict[str, Any]) -> BaseException:
    """Rebuild the exception described by Celery's dict form.

    Raises:
        SecurityError: the named object is not an exception class.
        ValueError: ``exc_type`` is missing.
    """
    try:
        exc_type = str(value["exc_type"])
    except KeyError:
        raise ValueError("Exception information must include the exception type") from None
    exc_module = value.get("exc_module")
    message = value.get("exc_message", "")
    cls = _resolve(exc_type, exc_module)
    if not isinstance(cls, type) or not issubclass(cls, BaseException):
        shown = exc_type if exc_module is None else f"{exc_module}.{exc_type}"
        raise SecurityError(f"Expected an exception class, got {shown} with payload {message!r}")
    try:
        if isinstance(message, (list, tuple)):
            return cls(*message)
        return cls(message)
    except Exception:  # the class wants other constructor args: keep the information
        return Exception(f"{cls}({message!r})")


def _resolve(exc_type: str, exc_module: Any) -> Any:
    if exc_module is None:
        return substitute_class(exc_type, CELERY_EXCEPTIONS_MODULE)
    module_name = str(exc_module)
    lookup = OUR_EXCEPTIONS_MODULE if module_name == CELERY_EXCEPTIONS_MODULE else module_name
    found: Any = sys.modules.get(lookup)
    if found is None:
        return substitute_class(exc_type, module_name)
    for part in exc_type.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            return substitute_class(exc_type, module_name)
    return found


def substitute_class(qualname: str, module: str) -> type[Exception]:
    """A stand-in ``Exception`` subclass named like the class that could not be found.

    The same (module, name) always gives the same class, so ``except`` clauses and
    ``isinstance`` checks against a substitute keep working across results.
    """
    key = (module, qualname)
    with _substitutes_lock:
        cls = _substitutes.get(key)
        if cls is None:
            name = qualname.rsplit(".", 1)[-1]
            cls = type(name, (Exception,), {"__module__": module, "__qualname__": qualname})
            _substitutes[key] = cls
        return cls


def exception_to_python(value: Any) -> BaseException | None:
    """Decode a stored exception value: dict form, an exception object (pickle), or None."""
    if not value:
        return None
    if isinstance(value, BaseException):
        return value
    if not isinstance(value, dict):
        try:
            value = dict(value)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"A stored exception must be an exception or a dict, got {value!r}"
            ) from exc
    return dict_to_exception(value)


__all__ = [
    "CELERY_EXCEPTIONS_MODULE",
    "OUR_EXCEPTIONS_MODULE",
    "dict_to_exception",
    "exception_to_dict",
    "exception_to_python",
    "pickleable_exception",
    "substitute_class",
]
