"""Serializer registry, kombu JSON, accept_content enforcement."""

from __future__ import annotations

import pickle
import sys
from datetime import date, datetime, time, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from celeriac.exceptions import ContentDisallowed, DecodeError, EncodeError, ImproperlyConfigured
from celeriac.protocol import jsonx
from celeriac.protocol.serialization import content_types, dumps, loads, register, registered

VALUES: list[Any] = [
    datetime(2030, 5, 6, 7, 8, 9, 123456, tzinfo=timezone.utc),
    datetime(2030, 5, 6, 7, 8, 9),
    date(2030, 5, 6),
    time(7, 8, 9),
    UUID("12345678-1234-5678-1234-567812345678"),
    b"plain bytes",
    b"\xff\xfe\x00binary",
    Decimal("1.50"),
    {"nested": [1, "x", None, True, 2.5]},
    "caf\u00e9",
]


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_json_round_trip(value: Any) -> None:
    data, content_type, encoding = dumps(value, "json")
    assert loads(data, content_type, encoding, accept=["json"]) == value


def test_json_uses_stdlib_defaults() -> None:
    assert jsonx.dumps({"a": [1, (2, 3)], "b": "\u00e9"}) == '{"a": [1, [2, 3]], "b": "\\u00e9"}'
    assert jsonx.dumps(UUID(int=1)) == (
        '{"__type__": "uuid", "__value__": {"hex": "00000000000000000000000000000001"}}'
    )
    assert jsonx.dumps(b"\xff") == '{"__type__": "base64", "__value__": "/w=="}'


def test_json_uses_dunder_json() -> None:
    class Point:
        def __json__(self) -> dict[str, int]:
            return {"x": 1}

    assert jsonx.dumps([Point()]) == '[{"x": 1}]'


def test_any_two_key_marker_object_is_decoded() -> None:
    assert jsonx.loads('{"__type__": "decimal", "__value__": "2.5"}') == Decimal("2.5")
    # Three keys: an ordinary object.
    plain = '{"__type__": "decimal", "__value__": "2.5", "x": 1}'
    assert jsonx.loads(plain) == {"__type__": "decimal", "__value__": "2.5", "x": 1}


def test_unknown_marker_is_a_decode_error() -> None:
    data = b'{"__type__": "frobnicator", "__value__": 1}'
    with pytest.raises(DecodeError, match="frobnicator"):
        loads(data, "application/json", "utf-8", accept=None)


def test_malformed_json_is_a_decode_error_naming_the_content_type() -> None:
    with pytest.raises(DecodeError, match=r"Malformed application/json message body: Expecting"):
        loads(b"[1, 2", "application/json", "utf-8", accept=["json"])


def test_unserializable_value_is_an_encode_error() -> None:
    with pytest.raises(EncodeError, match="object is not JSON serializable"):
        dumps([object()], "json")


def test_pickle_is_refused_unless_accepted() -> None:
    data, content_type, encoding = dumps((1, 2), "pickle")
    assert (content_type, encoding) == ("application/x-python-serialize", "binary")
    with pytest.raises(ContentDisallowed) as excinfo:
        loads(data, content_type, encoding, accept=["json"])
    message = str(excinfo.value)
    assert message.startswith(
        "Refusing to deserialize untrusted content of type pickle (application/x-python-serialize)"
    )
    assert "add 'pickle' to accept_content" in message
    assert loads(data, content_type, encoding, accept=["json", "pickle"]) == (1, 2)
    # accept may name content types instead of serializers, as accept_content allows.
    assert loads(data, content_type, encoding, accept={"application/x-python-serialize"}) == (1, 2)
    assert loads(data, content_type, encoding, accept=None) == (1, 2)


def test_pickle_is_protocol_4() -> None:
    data, _, _ = dumps({"a": 1}, "pickle")
    assert data[:2] == b"\x80\x04"
    assert data == pickle.dumps({"a": 1}, protocol=4)


def test_raw_payloads_pass_through() -> None:
    assert loads(b"\x00\x01", "application/data", "binary", accept=["json"]) == b"\x00\x01"
    assert loads(b"caf\xc3\xa9", "text/plain", "utf-8", accept=["json"]) == "caf\u00e9"
    assert loads(b"", "application/json", "utf-8", accept=["json"]) == b""


def test_unknown_type_is_refused_when_accept_is_given() -> None:
    with pytest.raises(ContentDisallowed, match="application/x-frob"):
        loads(b"x", "application/x-frob", "utf-8", accept=["json"])


def test_content_types_normalises_names() -> None:
    assert content_types(["json", "application/x-yaml", "pickle"]) == {
        "application/json",
        "application/x-yaml",
        "application/x-python-serialize",
    }
    with pytest.raises(ImproperlyConfigured, match=r"'jsn' \(did you mean 'json'\?\).*msgpack"):
        content_types(["jsn"])


def test_unknown_serializer_name() -> None:
    with pytest.raises(ImproperlyConfigured, match="known serializers are"):
        dumps(1, "xml")


@pytest.mark.parametrize("name", ["msgpack", "yaml"])
def test_optional_serializers_round_trip(name: str) -> None:
    value = {"args": [1, "two", None, True], "kwargs": {"x": 1.5}}
    data, content_type, encoding = dumps(value, name)
    assert isinstance(data, bytes)
    assert loads(data, content_type, encoding, accept=[name]) == value


def test_msgpack_and_yaml_wire_details() -> None:
    assert dumps(b"\x01", "msgpack") == (b"\xc4\x01\x01", "application/x-msgpack", "binary")
    assert dumps([1, 2], "yaml") == (b"- 1\n- 2\n", "application/x-yaml", "utf-8")
    # safe_load: no Python objects from YAML tags.
    with pytest.raises(DecodeError, match="application/x-yaml"):
        loads(b"!!python/object:os.system {}", "application/x-yaml", "utf-8", accept=None)


@pytest.mark.parametrize(("name", "dist"), [("msgpack", "msgpack"), ("yaml", "yaml")])
def test_missing_optional_library_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, name: str, dist: str
) -> None:
    monkeypatch.setitem(sys.modules, dist, None)  # makes `import` raise ImportError
    with pytest.raises(ImproperlyConfigured, match=rf"pip install 'celeriac\[{name}\]'"):
        dumps([1], name)


def test_register_custom_serializer() -> None:
    register("upper", lambda o: str(o).upper(), lambda b: b.decode().lower(), "text/x-upper")
    try:
        assert "upper" in registered()
        data, content_type, encoding = dumps("abc", "upper")
        assert (data, content_type, encoding) == (b"ABC", "text/x-upper", "utf-8")
        assert loads(data, content_type, encoding, accept=["upper"]) == "abc"
    finally:
        from celeriac.protocol import serialization

        serialization._by_name.pop("upper")
        serialization._by_type.pop("text/x-upper")


def test_accept_lists_are_read_again_when_they_change() -> None:
    data, content_type, encoding = dumps((1, 2), "pickle")
    accept = ["json"]
    with pytest.raises(ContentDisallowed):
        loads(data, content_type, encoding, accept=accept)
    accept.append("pickle")  # changed in place: the remembered answer must not be reused
    assert loads(data, content_type, encoding, accept=accept) == (1, 2)
    for _ in range(2):  # an unknown name is an error every time, never remembered
        with pytest.raises(ImproperlyConfigured, match="jsn"):
            loads(b"1", "application/json", "utf-8", accept=["jsn"])
