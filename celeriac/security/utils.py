"""Helpers of the message-signing serializer: digest names, crypto errors as SecurityError."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from cryptography.hazmat.primitives import hashes

from celeriac.exceptions import SecurityError

#: Celery's default ``security_digest``.
DEFAULT_DIGEST = "sha256"


def get_digest_algorithm(digest: str = DEFAULT_DIGEST) -> hashes.HashAlgorithm:
    """The hash named ``digest`` (``sha256``, ``sha512``, ...), as Celery names them."""
    algorithm = getattr(hashes, (digest or "").upper().replace("-", "_"), None)
    if not (isinstance(algorithm, type) and issubclass(algorithm, hashes.HashAlgorithm)):
        raise SecurityError(
            f"Unknown security_digest {digest!r}: use a name from "
            "cryptography.hazmat.primitives.hashes, such as 'sha256' or 'sha512'"
        )
    try:
        return algorithm()
    except TypeError as exc:  # the variable-length ones (BLAKE2, SHAKE) need a size
        raise SecurityError(f"security_digest {digest!r} needs a digest size: {exc}") from exc


@contextmanager
def reraise_errors(
    message: str = "{0!r}", errors: tuple[type[BaseException], ...] = (Exception,)
) -> Iterator[None]:
    """Turn ``errors`` raised inside into :class:`SecurityError` (``message`` formats them)."""
    try:
        yield
    except SecurityError:
        raise
    except errors as exc:
        raise SecurityError(message.format(exc)) from exc


__all__ = ["DEFAULT_DIGEST", "get_digest_algorithm", "reraise_errors"]
