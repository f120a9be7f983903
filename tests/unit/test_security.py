"""Message signing (``celeriac.security``): the ``auth`` serializer, byte-compatible with
Celery's, and ``app.setup_security()``."""

from __future__ import annotations

import base64
import importlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac import Celery
from celeriac.exceptions import ContentDisallowed, ImproperlyConfigured, SecurityError
from celeriac.protocol import serialization, task_v2
from celeriac.protocol.message import TaskCall
from celeriac.security.certificate import Certificate, CertStore, FSCertStore
from celeriac.security.key import PrivateKey
from celeriac.security.serialization import SEPARATOR, SecureSerializer, register_auth
from celeriac.transports.base import Delivery
from celeriac.worker.request import BadMessage, build_request, discard_bad_message
from tests.security_keys import Identity, make_identity, restored_serializers

VALUE = {"args": [2, 3], "kwargs": {"name": "caf\u00e9"}, "nested": [None, True, 1.5]}


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Identity]:
    """Two trusted signers in one store directory, a stranger and an expired one elsewhere."""
    root = tmp_path_factory.mktemp("keys")
    return {
        "alice": make_identity(root / "store", "alice", serial=1),
        "bob": make_identity(root / "store", "bob", serial=2),
        "mallory": make_identity(root / "strangers", "mallory", serial=3),
        # Same issuer and serial as alice (so the same id), another key.
        "impostor": make_identity(root / "impostor", "alice", serial=1),
        "expired": make_identity(root / "expired", "old", serial=4, expired=True),
        "locked": make_identity(root / "locked", "locked", serial=5, password=b"pw-0451"),
    }


def signer(identity: Identity, store: Path | str | None = None) -> SecureSerializer:
    return SecureSerializer(
        PrivateKey(identity.key.read_bytes()),
        Certificate(identity.cert.read_bytes()),
        FSCertStore(str(store)) if store is not None else None,
    )


def store_of(keys: dict[str, Identity]) -> Path:
    return keys["alice"].cert.parent


def test_round_trip(keys: dict[str, Identity]) -> None:
    alice = signer(keys["alice"], store_of(keys))
    payload = alice.serialize(VALUE)
    assert alice.deserialize(payload) == VALUE
    # Another trusted signer's messages verify too (found by issuer + serial).
    assert alice.deserialize(signer(keys["bob"]).serialize(VALUE)) == VALUE


def test_the_payload_is_celerys_layout(keys: dict[str, Identity]) -> None:
    payload = signer(keys["alice"]).serialize(VALUE)
    fields = base64.b64decode(payload).split(SEPARATOR, 4)
    assert base64.b64decode(fields[0]).decode() == keys["alice"].cert_id == "celeriac tests alice 1"
    assert len(base64.b64decode(fields[1])) == 256  # an RSA-2048 signature
    assert fields[2:4] == [b"application/json", b"utf-8"]
    assert serialization.loads(fields[4], "application/json", "utf-8", accept=None) == VALUE


def _tamper(payload: str, body: bytes) -> str:
    fields = base64.b64decode(payload).split(SEPARATOR, 4)
    return base64.b64encode(SEPARATOR.join([*fields[:4], body])).decode()


def test_a_tampered_body_is_refused(keys: dict[str, Identity]) -> None:
    alice = signer(keys["alice"], store_of(keys))
    tampered = _tamper(alice.serialize({"amount": 1}), b'{"amount": 1000}')
    with pytest.raises(SecurityError, match="Bad signature"):
        alice.deserialize(tampered)


def test_a_signature_by_another_key_under_a_trusted_id_is_refused(
    keys: dict[str, Identity],
) -> None:
    payload = signer(keys["impostor"]).serialize(VALUE)
    with pytest.raises(SecurityError, match=r"Bad signature.*celeriac tests alice 1"):
        signer(keys["alice"], store_of(keys)).deserialize(payload)


def test_an_unknown_signer_is_refused(keys: dict[str, Identity]) -> None:
    payload = signer(keys["mallory"]).serialize(VALUE)
    with pytest.raises(SecurityError, match="Unknown certificate: 'celeriac tests mallory 3'"):
        signer(keys["alice"], store_of(keys)).deserialize(payload)


def test_an_expired_certificate_is_refused(keys: dict[str, Identity]) -> None:
    expired = Certificate(keys["expired"].cert.read_bytes())
    assert expired.has_expired()
    store = CertStore()
    store.add_cert(expired)
    payload = signer(keys["expired"]).serialize(VALUE)
    with pytest.raises(SecurityError, match="Expired certificate: 'celeriac tests old 4'"):
        SecureSerializer(cert_store=store).deserialize(payload)
    # A store directory holding one refuses to load at all.
    with pytest.raises(SecurityError, match="Expired certificate"):
        FSCertStore(str(keys["expired"].cert.parent))


@pytest.mark.parametrize(
    "payload", [b"", b"not base64 !", base64.b64encode(b'{"plain": "json"}'), b"\xff\xfe"]
)
def test_an_unsigned_payload_is_refused(keys: dict[str, Identity], payload: bytes) -> None:
    with pytest.raises(SecurityError, match="not a signed message"):
        signer(keys["alice"], store_of(keys)).deserialize(payload)


def test_bad_key_files_say_so(keys: dict[str, Identity], tmp_path: Path) -> None:
    with pytest.raises(SecurityError, match="Invalid private key"):
        PrivateKey(b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    with pytest.raises(SecurityError, match="Invalid private key"):
        PrivateKey(keys["locked"].key.read_bytes(), password=b"wrong")
    assert PrivateKey(keys["locked"].key.read_bytes(), password="pw-0451")
    with pytest.raises(SecurityError, match="Invalid certificate"):
        Certificate(b"not a certificate")
    with pytest.raises(SecurityError, match="holds no certificate files"):
        FSCertStore(str(tmp_path / "empty" / "*.pem"))
    with pytest.raises(SecurityError, match="Unknown security_digest 'sha-nope'"):
        SecureSerializer(digest="sha-nope")


# -- interop with Celery's serializer, in process (no registry is touched) ------------------


def celery_signer(identity: Identity, store: Path | None = None) -> object:
    from celery.security.certificate import Certificate as CeleryCertificate
    from celery.security.certificate import FSCertStore as CeleryStore
    from celery.security.key import PrivateKey as CeleryKey
    from celery.security.serialization import SecureSerializer as CelerySerializer

    return CelerySerializer(
        CeleryKey(identity.key.read_text()),
        CeleryCertificate(identity.cert.read_text()),
        CeleryStore(str(store)) if store is not None else None,
        "sha256",
        serializer="json",
    )


def test_a_message_signed_by_celery_verifies_here_and_the_reverse(
    keys: dict[str, Identity],
) -> None:
    celery_side = celery_signer(keys["alice"], store_of(keys))
    ours = signer(keys["bob"], store_of(keys))
    from_celery = celery_side.serialize(VALUE)  # type: ignore[attr-defined]
    assert ours.deserialize(from_celery) == VALUE
    assert celery_side.deserialize(ours.serialize(VALUE)) == VALUE  # type: ignore[attr-defined]
    # The ids agree, so each side finds the other's certificate.
    from celery.security.certificate import Certificate as CeleryCertificate

    celery_cert = CeleryCertificate(keys["alice"].cert.read_text())
    assert celery_cert.get_id() == Certificate(keys["alice"].cert.read_bytes()).get_id()


def test_celery_refuses_what_we_refuse(keys: dict[str, Identity]) -> None:
    from celery.exceptions import SecurityError as CelerySecurityError

    celery_side = celery_signer(keys["alice"], store_of(keys))
    tampered = _tamper(signer(keys["alice"]).serialize({"amount": 1}), b'{"amount": 9}')
    with pytest.raises(CelerySecurityError):
        celery_side.deserialize(tampered)  # type: ignore[attr-defined]
    with pytest.raises(SecurityError):
        signer(keys["alice"], store_of(keys)).deserialize(tampered)


# -- app.setup_security() ------------------------------------------------------------------


@pytest.fixture
def registries() -> Iterator[None]:
    with restored_serializers():
        yield


def signing_app(identity: Identity, store: Path, **conf: object) -> Celery:
    app = Celery("signing", broker="memory://", set_as_current=False)
    app.conf.update(
        {
            "security_key": str(identity.key),
            "security_certificate": str(identity.cert),
            "security_cert_store": str(store / "*.pem"),
            "task_serializer": "auth",
            "accept_content": ["auth"],
            "result_accept_content": ["json"],
            **conf,
        }
    )
    return app


def test_setup_security_signs_task_messages(keys: dict[str, Identity], registries: None) -> None:
    app = signing_app(keys["alice"], store_of(keys))
    app.setup_security()
    assert "auth" in serialization.registered()
    message = task_v2.encode(TaskCall(name="t.add", id="id-1", args=(2, 3)), serializer="auth")
    assert message.content_type == "application/data"
    call = task_v2.decode(message, accept=app.conf.accept_content)
    assert (call.id, tuple(call.args)) == ("id-1", (2, 3))
    # Unsigned json is refused by the accept list, and where none applies (remote control).
    plain = task_v2.encode(TaskCall(name="t.add", id="id-2", args=(1,)), serializer="json")
    with pytest.raises(ContentDisallowed):
        task_v2.decode(plain, accept=app.conf.accept_content)
    with pytest.raises(ContentDisallowed, match="disabled"):
        serialization.loads(plain.body, "application/json", "utf-8", accept=None)


class _Rejects:
    """Enough of a transport for a delivery to be rejected."""

    def __init__(self) -> None:
        self.rejected: list[tuple[str, bool]] = []

    def reject(self, deliveries: list[Delivery], requeue: bool = False) -> None:
        self.rejected += [(d.delivery_tag, requeue) for d in deliveries]


def test_the_worker_logs_and_rejects_a_forged_message(
    keys: dict[str, Identity], registries: None, caplog: pytest.LogCaptureFixture
) -> None:
    # Mallory signs a task with a key the worker does not trust...
    register_auth(keys["mallory"].key.read_bytes(), cert=keys["mallory"].cert.read_bytes())
    call = TaskCall(name="t.add", id="forged-id-7", args=(1, 2))
    forged = task_v2.encode(call, serializer="auth")
    # ...and the worker, set up to trust alice and bob only, receives it.
    app = signing_app(keys["alice"], store_of(keys))
    app.task(name="t.add")(lambda x, y: x + y)
    app.setup_security()
    transport = _Rejects()
    delivery = Delivery(forged, "q", "", "q", "tag-1", transport=transport)  # type: ignore[arg-type]
    with pytest.raises(BadMessage) as caught:
        build_request(app, delivery, app.conf.accept_content)
    assert isinstance(caught.value.cause, SecurityError)
    with caplog.at_level(logging.ERROR):
        discard_bad_message(app, delivery, caught.value)
    assert transport.rejected == [("tag-1", False)]
    line = next(r.getMessage() for r in caplog.records if "forged-id-7" in r.getMessage())
    assert "t.add[forged-id-7]" in line
    assert "Unknown certificate: 'celeriac tests mallory 3'" in line
    # A message alice signs still builds a request.
    good = task_v2.encode(TaskCall(name="t.add", id="good-id", args=(1, 2)), serializer="auth")
    request = build_request(app, Delivery(good, "q", "", "q", "tag-2"), app.conf.accept_content)
    assert request.call.args == (1, 2)


def test_setup_security_needs_the_serializer_settings(
    keys: dict[str, Identity], registries: None
) -> None:
    app = signing_app(keys["alice"], store_of(keys), accept_content=["auth", "json"])
    with pytest.raises(ImproperlyConfigured, match="accept_content = \\['auth'\\]"):
        app.setup_security()
    app = signing_app(keys["alice"], store_of(keys), security_key=None)
    with pytest.raises(ImproperlyConfigured, match="security_key, security_certificate"):
        app.setup_security()
    app = signing_app(keys["alice"], store_of(keys), security_key="/nonexistent/k.pem")
    with pytest.raises(ImproperlyConfigured, match=r"/nonexistent/k\.pem"):
        app.setup_security()


def test_without_cryptography_the_error_names_the_extra(
    keys: dict[str, Identity], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [m for m in sys.modules if m.startswith(("celeriac.security", "cryptography"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "cryptography", None)  # import cryptography fails
    app = signing_app(keys["alice"], store_of(keys))
    with pytest.raises(ImproperlyConfigured, match=r"pip install 'celeriac\[security\]'"):
        app.setup_security()
    with pytest.raises(ImproperlyConfigured, match="cryptography"):
        importlib.import_module("celeriac.security")


def test_a_signing_apps_event_receiver_reads_json_events(
    keys: dict[str, Identity], registries: None
) -> None:
    # Celery's receiver accepts the event serializer and json, whatever accept_content says.
    app = signing_app(keys["alice"], store_of(keys))
    app.setup_security()
    receiver = app.events.Receiver(channel=app.connection(), handlers={})
    try:
        assert receiver.accept is not None and set(receiver.accept) == {"json"}
        app.conf.event_serializer = "auth"
        signed = app.events.Receiver(channel=app.connection(), handlers={})
        assert signed.accept is not None and set(signed.accept) == {"auth", "json"}
    finally:
        app.close()
