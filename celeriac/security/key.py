"""The private key that signs messages (RSA, PEM, optionally password-protected)."""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from celeriac.exceptions import SecurityError
from celeriac.security.utils import reraise_errors


def pss(digest: hashes.HashAlgorithm) -> padding.PSS:
    """The padding Celery signs with: PSS, MGF1 over ``digest``, the longest salt."""
    return padding.PSS(mgf=padding.MGF1(digest), salt_length=padding.PSS.MAX_LENGTH)


class PrivateKey:
    """An RSA private key read from PEM text (``security_key``'s file)."""

    def __init__(self, key: str | bytes, password: str | bytes | None = None) -> None:
        pem = key.encode() if isinstance(key, str) else key
        secret = password.encode() if isinstance(password, str) else password
        with reraise_errors("Invalid private key: {0!r}", errors=(ValueError, TypeError)):
            loaded = serialization.load_pem_private_key(pem, password=secret or None)
        if not isinstance(loaded, rsa.RSAPrivateKey):
            raise SecurityError("Invalid private key: only RSA keys are supported (as in Celery)")
        self._key = loaded

    def sign(self, data: bytes, digest: hashes.HashAlgorithm) -> bytes:
        """The signature of ``data``."""
        with reraise_errors("Unable to sign data: {0!r}"):
            return self._key.sign(data, pss(digest), digest)


__all__ = ["PrivateKey", "pss"]
