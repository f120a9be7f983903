"""Body compression, named as kombu names it.

The ``compression`` header carries the compressor's content type (``application/x-gzip``
for zlib, which is plain zlib deflate and not a gzip file, exactly as kombu does).
"""

from __future__ import annotations

import bz2
import importlib
import lzma
import zlib
from collections.abc import Callable, Iterable
from typing import Any

from celeriac.exceptions import DecodeError, ImproperlyConfigured

_Codec = Callable[[bytes], bytes]

_codecs: dict[str, tuple[_Codec, _Codec]] = {}
_aliases: dict[str, str] = {}


def register(
    content_type: str, encoder: _Codec, decoder: _Codec, aliases: Iterable[str] = ()
) -> None:
    """Add a compression method under its header value and its short names."""
    _codecs[content_type] = (encoder, decoder)
    for alias in aliases:
        _aliases[alias] = content_type


def names() -> list[str]:
    """Every accepted compression name (aliases and header values)."""
    return sorted({*_aliases, *_codecs})


def _resolve(name: str) -> str:
    return _aliases.get(name, name)


def compress(data: bytes, name: str) -> tuple[bytes, str]:
    """Compress ``data`` with ``name`` (alias or header value) -> (bytes, header value)."""
    content_type = _resolve(name)
    codec = _codecs.get(content_type)
    if codec is None:
        raise ImproperlyConfigured(
            f"Unknown compression {name!r}: choose one of {', '.join(sorted(_aliases))}"
        )
    return codec[0](data), content_type


def decompress(data: bytes, content_type: str) -> bytes:
    """Undo :func:`compress`; ``content_type`` is the header value (aliases also accepted)."""
    codec = _codecs.get(_resolve(content_type))
    if codec is None:
        raise DecodeError(
            f"Message is compressed with unsupported compression {content_type!r} "
            f"(supported: {', '.join(sorted(_codecs))})"
        )
    try:
        return codec[1](data)
    except Exception as exc:  # each library raises its own error type
        raise DecodeError(f"Cannot decompress {content_type} message body: {exc}") from exc


def _optional(module_names: Iterable[str]) -> Any:
    """The first importable module of ``module_names`` (optional codecs), else None."""
    for module_name in module_names:
        try:
            return importlib.import_module(module_name)
        except ImportError:
            continue
    return None


def _register_defaults() -> None:
    register("application/x-gzip", zlib.compress, zlib.decompress, aliases=["gzip", "zlib"])
    register("application/x-bz2", bz2.compress, bz2.decompress, aliases=["bzip2", "bzip"])
    register("application/x-lzma", lzma.compress, lzma.decompress, aliases=["lzma", "xz"])
    brotli = _optional(["brotli", "brotlicffi"])
    if brotli is not None:
        register("application/x-brotli", brotli.compress, brotli.decompress, aliases=["brotli"])
    zstd = _optional(["compression.zstd", "backports.zstd"])
    if zstd is not None:
        register("application/zstd", zstd.compress, zstd.decompress, ["zstd", "zstandard"])


_register_defaults()

__all__ = ["compress", "decompress", "names", "register"]
