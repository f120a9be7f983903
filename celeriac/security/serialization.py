"""The ``auth`` serializer: a body signed by its sender and verified by its receiver.

Byte for byte Celery's (``celery.security.serialization``): the inner serializer (json by
default) encodes the value; the key signs those bytes (RSA-PSS, MGF1, the longest salt,
``security_digest``); then these five fields, joined by ``b"\\x00\\x01"``, are base64'd
into one ASCII payload of content type ``application/data``::

    base64(signer) | base64(signature) | content type | content encoding | body

``signer`` is the certificate's id (issuer and serial number); the receiver looks it up in
its certificate store, verifies the signature over the body as sent, and only then decodes
the body. Whatever fails raises :class:`~celeriac.exceptions.SecurityError`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from celeriac.exceptions import SecurityError
from celeriac.protocol import serialization
from celeriac.security.certificate import Certificate, CertStore, FSCertStore
from celeriac.security.key import PrivateKey
from celeriac.security.utils import DEFAULT_DIGEST, get_digest_algorithm, reraise_errors

#: What joins the fields; base64 text and content types never hold it, and the body is last.
SEPARATOR = b"\x00\x01"
#: The name and content type the serializer is registered under (Celery's).
NAME = "auth"
CONTENT_TYPE = "application/data"
CONTENT_ENCODING = "utf-8"


class SecureSerializer:
    """Signs with ``key`` as ``cert``'s owner; verifies against ``cert_store``."""

    def __init__(
        self,
        key: PrivateKey | None = None,
        cert: Certificate | None = None,
        cert_store: CertStore | None = None,
        digest: str = DEFAULT_DIGEST,
        serializer: str = "json",
    ) -> None:
        self._key = key
        self._cert = cert
        self._cert_store = cert_store
        self._digest = get_digest_algorithm(digest)
        self._serializer = serializer

    def serialize(self, data: Any) -> str:
        """The signed payload of ``data`` (base64 text)."""
        if self._key is None or self._cert is None:
            raise SecurityError("Cannot sign: no security_key and security_certificate set")
        body, content_type, content_encoding = serialization.dumps(data, self._serializer)
        # The serialized bytes are signed, so the receiver verifies before decoding anything.
        signature = self._key.sign(body, self._digest)
        return self.pack(body, content_type, content_encoding, self._cert.get_id(), signature)

    def deserialize(self, data: bytes | str) -> Any:
        """The value of a signed payload, once its signature checks out."""
        if self._cert_store is None:
            raise SecurityError("Cannot verify: no security_cert_store set")
        signer, signature, content_type, content_encoding, body = self.unpack(data)
        self._cert_store[signer].verify(body, signature, self._digest)
        return serialization.loads(body, content_type, content_encoding, accept=None, force=True)

    @staticmethod
    def pack(
        body: bytes, content_type: str, content_encoding: str, signer: str, signature: bytes
    ) -> str:
        fields = SEPARATOR.join(
            [
                base64.b64encode(signer.encode()),
                base64.b64encode(signature),
                content_type.encode(),
                content_encoding.encode(),
                body,
            ]
        )
        return base64.b64encode(fields).decode("ascii")

    @staticmethod
    def unpack(payload: bytes | str) -> tuple[str, bytes, str, str, bytes]:
        """``(signer, signature, content type, content encoding, body)`` of a payload."""
        raw = payload.encode() if isinstance(payload, str) else payload
        with reraise_errors(
            "Unable to deserialize: not a signed message ({0})",
            errors=(binascii.Error, ValueError),
        ):
            fields = base64.b64decode(raw, validate=True).split(SEPARATOR, 4)
            if len(fields) != 5:
                raise ValueError(f"{len(fields)} fields, expected 5")
            signer, signature, content_type, content_encoding, body = fields
            return (
                base64.b64decode(signer, validate=True).decode(),
                base64.b64decode(signature, validate=True),
                content_type.decode(),
                content_encoding.decode(),
                body,
            )


def register_auth(
    key: str | bytes | None = None,
    key_password: str | bytes | None = None,
    cert: str | bytes | None = None,
    store: str | None = None,
    digest: str = DEFAULT_DIGEST,
    serializer: str = "json",
) -> SecureSerializer:
    """Register the ``auth`` serializer: ``key`` and ``cert`` are PEM text, ``store`` a path."""
    signer = SecureSerializer(
        PrivateKey(key, password=key_password) if key else None,
        Certificate(cert) if cert else None,
        FSCertStore(store) if store else None,
        digest or DEFAULT_DIGEST,
        serializer=serializer,
    )
    serialization.register(
        NAME, signer.serialize, signer.deserialize, CONTENT_TYPE, CONTENT_ENCODING
    )
    return signer


__all__ = ["CONTENT_TYPE", "NAME", "SEPARATOR", "SecureSerializer", "register_auth"]
