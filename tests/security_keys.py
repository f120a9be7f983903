"""Test-only signing identities: an RSA key and a self-signed certificate, made per test run.

Nothing here is a real secret: every key is generated into a temporary directory.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from celeriac.protocol import serialization as celeriac_serialization


@dataclass(frozen=True)
class Identity:
    """Where one signer's key and certificate were written, and the certificate's id."""

    key: Path
    cert: Path
    cert_id: str


def make_identity(
    directory: Path,
    name: str,
    *,
    serial: int = 1000,
    expired: bool = False,
    password: bytes | None = None,
) -> Identity:
    """Write ``<name>.pem`` (self-signed, CN=``name``) into ``directory`` and its key beside
    it, in ``<directory>-keys/<name>.key`` (so ``directory`` can be a certificate store)."""
    directory.mkdir(parents=True, exist_ok=True)
    keys = directory.parent / f"{directory.name}-keys"
    keys.mkdir(exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "celeriac tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = (
        (now - datetime.timedelta(days=10), now - datetime.timedelta(days=1))
        if expired
        else (now - datetime.timedelta(days=1), now + datetime.timedelta(days=30))
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(start)
        .not_valid_after(end)
        .sign(key, hashes.SHA256())
    )
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    key_path, cert_path = keys / f"{name}.key", directory / f"{name}.pem"
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Identity(key_path, cert_path, f"celeriac tests {name} {serial}")


@contextlib.contextmanager
def restored_serializers() -> Iterator[None]:
    """Undo what ``setup_security()`` does to the process-wide serializer registries
    (celeriac's, and kombu's when a Celery app set up signing in this process)."""
    from kombu.serialization import registry as kombu_registry  # Celery's registry

    disabled = celeriac_serialization.disabled()
    kombu_disabled = set(kombu_registry._disabled_content_types)
    kombu_default = (
        kombu_registry._default_content_type,
        kombu_registry._default_content_encoding,
        kombu_registry._default_encode,
    )
    try:
        yield
    finally:
        celeriac_serialization.unregister("auth")
        for content_type in celeriac_serialization.disabled() - disabled:
            celeriac_serialization.enable(content_type)
        if "auth" in kombu_registry.name_to_type:
            kombu_registry.unregister("auth")
        kombu_registry._disabled_content_types = kombu_disabled
        (
            kombu_registry._default_content_type,
            kombu_registry._default_content_encoding,
            kombu_registry._default_encode,
        ) = kombu_default
