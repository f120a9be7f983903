"""X.509 certificates that verify signed messages, and the store they are found in.

A message names its signer as the certificate's issuer and serial number (Celery's
``get_id()``: the issuer's attribute values joined by spaces, a space, the serial in
decimal); the receiver looks that id up in its store (``security_cert_store``).
"""

from __future__ import annotations

import datetime
import glob
import os
from collections.abc import Iterator

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa

from celeriac.exceptions import SecurityError
from celeriac.security.key import pss
from celeriac.security.utils import reraise_errors


class Certificate:
    """An RSA X.509 certificate read from PEM text."""

    def __init__(self, cert: str | bytes) -> None:
        pem = cert.encode() if isinstance(cert, str) else cert
        with reraise_errors("Invalid certificate: {0!r}", errors=(ValueError, TypeError)):
            self._cert = x509.load_pem_x509_certificate(pem)
        key = self._cert.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise SecurityError(
                f"Invalid certificate {self.get_id()!r}: only RSA keys are supported (as in Celery)"
            )
        self._key = key

    def has_expired(self) -> bool:
        """Whether the certificate's validity ended."""
        return datetime.datetime.now(datetime.timezone.utc) >= self._cert.not_valid_after_utc

    def get_serial_number(self) -> int:
        return self._cert.serial_number

    def get_issuer(self) -> str:
        """The issuer's attribute values joined by spaces (Celery's form)."""
        return " ".join(str(attribute.value) for attribute in self._cert.issuer)

    def get_id(self) -> str:
        """Issuer and serial number: what identifies the signer in a message."""
        return f"{self.get_issuer()} {self.get_serial_number()}"

    def verify(self, data: bytes, signature: bytes, digest: hashes.HashAlgorithm) -> None:
        """Raise :class:`SecurityError` unless ``signature`` signs ``data`` with this key."""
        if self.has_expired():
            raise SecurityError(f"Expired certificate: {self.get_id()!r}")
        try:
            self._key.verify(signature, data, pss(digest), digest)
        except InvalidSignature as exc:
            raise SecurityError(
                f"Bad signature: the message does not match its signature by {self.get_id()!r}"
            ) from exc


class CertStore:
    """Certificates by id (issuer and serial number)."""

    def __init__(self) -> None:
        self._certs: dict[str, Certificate] = {}

    def itercerts(self) -> Iterator[Certificate]:
        yield from self._certs.values()

    def __getitem__(self, cert_id: str | bytes) -> Certificate:
        key = cert_id.decode("utf-8", "replace") if isinstance(cert_id, bytes) else cert_id
        try:
            return self._certs[key]
        except KeyError:
            raise SecurityError(
                f"Unknown certificate: {key!r} is not in the certificate store"
            ) from None

    def add_cert(self, cert: Certificate) -> None:
        cert_id = cert.get_id()
        if cert_id in self._certs:
            raise SecurityError(f"Duplicate certificate: {cert_id!r}")
        self._certs[cert_id] = cert


class FSCertStore(CertStore):
    """The certificates in a directory (every file in it) or matching a glob pattern."""

    def __init__(self, path: str) -> None:
        super().__init__()
        pattern = os.path.join(path, "*") if os.path.isdir(path) else path
        paths = sorted(p for p in glob.glob(pattern) if os.path.isfile(p))
        if not paths:
            raise SecurityError(f"security_cert_store {path!r} holds no certificate files")
        for found in paths:
            with open(found, "rb") as f:
                cert = Certificate(f.read())
            if cert.has_expired():
                raise SecurityError(f"Expired certificate: {cert.get_id()!r} in {found}")
            self.add_cert(cert)


__all__ = ["CertStore", "Certificate", "FSCertStore"]
