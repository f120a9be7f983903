"""Exceptions as result values: Celery's dict form, both directions."""

from __future__ import annotations

import json
import pickle
import re
import sys
from typing import Any

import pytest

from celeriac import exceptions
from celeriac.backends import exceptions_codec as codec
from celeriac.exceptions import SecurityError, TaskRevokedError


def _json_ok(value: Any) -> bool:
    try:
        json.dumps(value)
    except TypeError:
        return False
    return True


class Outer:
    class NestedError(Exception):
        pass


class NeedsTwo(Exception):
    def __init__(self, a: Any, b: Any) -> None:
        super().__init__(a, b)


class Unpicklable(ValueError):
    def __init__(self, msg: str) -> None:
        super().__init__(msg)
        self.handle = lambda: None  # lambdas do not pickle


def test_builtin_exception_dict_form() -> None:
    assert codec.exception_to_dict(ValueError("boom", 42), _json_ok) == {
        "exc_type": "ValueError",
        "exc_message": ["boom", 42],
        "exc_module": "builtins",
    }


def test_nested_class_uses_dotted_qualname() -> None:
    encoded = codec.exception_to_dict(Outer.NestedError("x"), _json_ok)
    assert encoded["exc_type"] == "Outer.NestedError"
    assert encoded["exc_module"] == __name__
    assert type(codec.dict_to_exception(encoded)) is Outer.NestedError


def test_unserializable_args_become_repr() -> None:
    marker = object()
    encoded = codec.exception_to_dict(ValueError(marker, 1), _json_ok)
    assert encoded["exc_message"] == [repr(marker), 1]


def test_our_exceptions_travel_as_celery_exceptions() -> None:
    encoded = codec.exception_to_dict(TaskRevokedError("revoked"), _json_ok)
    assert encoded == {
        "exc_type": "TaskRevokedError",
        "exc_message": ["revoked"],
        "exc_module": "celery.exceptions",
    }


def test_celery_exceptions_decode_to_ours() -> None:
    decoded = codec.dict_to_exception(
        {
            "exc_type": "TaskRevokedError",
            "exc_message": ["expired"],
            "exc_module": "celery.exceptions",
        }
    )
    assert type(decoded) is exceptions.TaskRevokedError
    assert decoded.args == ("expired",)


def test_celery_exception_we_lack_is_substituted_in_celery_namespace() -> None:
    decoded = codec.dict_to_exception(
        {"exc_type": "BackendStoreError", "exc_message": ["x"], "exc_module": "celery.exceptions"}
    )
    assert type(decoded).__name__ == "BackendStoreError"
    assert type(decoded).__module__ == "celery.exceptions"


def test_unknown_module_gives_stable_substitute() -> None:
    payload = {"exc_type": "PaymentFailed", "exc_message": ["card"], "exc_module": "shop.errors"}
    first, second = codec.dict_to_exception(payload), codec.dict_to_exception(payload)
    assert type(first) is type(second)
    assert type(first).__name__ == "PaymentFailed"
    assert type(first).__module__ == "shop.errors"
    assert "shop.errors.PaymentFailed" in str(type(first))
    assert issubclass(type(first), Exception)
    assert first.args == ("card",)


def test_missing_module_gives_substitute() -> None:
    decoded = codec.dict_to_exception({"exc_type": "Odd", "exc_message": []})
    assert type(decoded).__name__ == "Odd"
    assert type(decoded).__module__ == "celery.exceptions"


def test_decoding_never_imports_a_module() -> None:
    sys.modules.pop("this", None)  # the Zen of Python prints itself when imported
    decoded = codec.dict_to_exception({"exc_type": "Zen", "exc_message": [], "exc_module": "this"})
    assert type(decoded).__name__ == "Zen"
    assert "this" not in sys.modules


@pytest.mark.parametrize(
    ("module", "name"),
    [("os", "system"), ("builtins", "eval"), ("os", "sep"), ("builtins", "object")],
)
def test_non_exception_is_refused(module: str, name: str) -> None:
    with pytest.raises(SecurityError, match=re.escape(f"{module}.{name}")):
        codec.dict_to_exception({"exc_type": name, "exc_message": ["x"], "exc_module": module})


def test_scalar_message_is_one_argument() -> None:
    decoded = codec.dict_to_exception(
        {"exc_type": "KeyError", "exc_message": "again", "exc_module": "builtins"}
    )
    assert decoded.args == ("again",)


def test_constructor_mismatch_keeps_information() -> None:
    decoded = codec.dict_to_exception(
        {"exc_type": "NeedsTwo", "exc_message": ["only one"], "exc_module": __name__}
    )
    assert type(decoded) is Exception
    assert "NeedsTwo" in str(decoded) and "only one" in str(decoded)


def test_missing_exc_type_is_an_error() -> None:
    with pytest.raises(ValueError, match="exception type"):
        codec.dict_to_exception({"exc_message": ["x"]})


def test_exception_to_python_accepts_all_stored_forms() -> None:
    assert codec.exception_to_python(None) is None
    exc = KeyError("k")
    assert codec.exception_to_python(exc) is exc
    pairs = [("exc_type", "KeyError"), ("exc_message", ["k"]), ("exc_module", "builtins")]
    assert isinstance(codec.exception_to_python(pairs), KeyError)
    with pytest.raises(TypeError):
        codec.exception_to_python(42)


def test_pickleable_exception_is_kept() -> None:
    exc = ValueError("fine")
    assert codec.pickleable_exception(exc, _json_ok) is exc


def test_unpicklable_exception_falls_back_to_a_base() -> None:
    prepared = codec.pickleable_exception(Unpicklable("bad"), _json_ok)
    assert type(prepared) is ValueError
    assert prepared.args == ("bad",)
    pickle.dumps(prepared)
