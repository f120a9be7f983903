"""Body compression names and header values (kombu's table)."""

from __future__ import annotations

import zlib

import pytest

from celeriac.exceptions import DecodeError, ImproperlyConfigured
from celeriac.protocol.compression import compress, decompress, names

DATA = b'[[2, 3], {}, {"callbacks": null}]' * 20


@pytest.mark.parametrize(
    ("name", "header"),
    [
        ("zlib", "application/x-gzip"),
        ("gzip", "application/x-gzip"),
        ("bzip2", "application/x-bz2"),
        ("bzip", "application/x-bz2"),
        ("lzma", "application/x-lzma"),
        ("xz", "application/x-lzma"),
        ("application/x-gzip", "application/x-gzip"),
    ],
)
def test_aliases_round_trip(name: str, header: str) -> None:
    compressed, content_type = compress(DATA, name)
    assert content_type == header
    assert compressed != DATA
    assert decompress(compressed, content_type) == DATA
    assert decompress(compressed, name) == DATA  # alias names are accepted too


def test_gzip_is_plain_zlib_like_kombu() -> None:
    compressed, _ = compress(DATA, "gzip")
    assert zlib.decompress(compressed) == DATA


def test_unknown_compression() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"Unknown compression 'snappy'.*zlib"):
        compress(DATA, "snappy")
    with pytest.raises(DecodeError, match="unsupported compression 'application/x-snappy'"):
        decompress(DATA, "application/x-snappy")


def test_corrupt_data_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="Cannot decompress application/x-gzip"):
        decompress(b"not zlib", "application/x-gzip")


def test_names_lists_aliases() -> None:
    assert {"zlib", "gzip", "bzip2", "lzma", "xz"} <= set(names())
