"""Message signing at Celery's path (``celery.security``): ``app.setup_security()``.

Needs the ``cryptography`` package (``pip install 'celeriac[security]'``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from celeriac.exceptions import ImproperlyConfigured

CRYPTOGRAPHY_NOT_INSTALLED = (
    "Message signing (the 'auth' serializer, app.setup_security()) needs the cryptography "
    "package: pip install 'celeriac[security]'"
)

try:
    import cryptography  # noqa: F401  (only checks that the extra is installed)
except ModuleNotFoundError as exc:  # pragma: no cover - the tests run with the extra
    raise ImproperlyConfigured(CRYPTOGRAPHY_NOT_INSTALLED) from exc

from celeriac.protocol import serialization as registry  # noqa: E402
from celeriac.security.serialization import register_auth  # noqa: E402
from celeriac.utils.current import get_current_app  # noqa: E402

if TYPE_CHECKING:
    from celeriac.app.base import Celery

SETTINGS_MISSING = (
    "Message signing needs the security_key, security_certificate and security_cert_store "
    "settings (the private key's PEM file, its certificate's PEM file, and the directory or "
    "glob of the certificates to trust)"
)
SERIALIZER_SETTINGS = (
    "Message signing needs task_serializer = 'auth' and accept_content = ['auth'] (a "
    "worker that also accepted unsigned messages would make signing pointless); got "
    "task_serializer = {serializer!r}, accept_content = {accept!r}"
)


def setup_security(
    allowed_serializers: Iterable[str] | None = None,
    key: str | None = None,
    key_password: str | bytes | None = None,
    cert: str | None = None,
    store: str | None = None,
    digest: str | None = None,
    serializer: str = "json",
    app: Celery | None = None,
) -> None:
    """Register the ``auth`` serializer and disable every other (see ``app.setup_security``).

    ``key``, ``cert`` and ``store`` are paths and default to the app's ``security_*``
    settings; ``serializer`` encodes the body before it is signed.
    """
    conf = (app if app is not None else get_current_app()).conf
    registry.disable_insecure_serializers(allowed_serializers)
    accept = list(conf.accept_content or [])
    if conf.task_serializer != "auth" or accept != ["auth"]:
        raise ImproperlyConfigured(
            SERIALIZER_SETTINGS.format(serializer=conf.task_serializer, accept=accept)
        )
    key = key or conf.security_key
    key_password = key_password or conf.security_key_password
    cert = cert or conf.security_certificate
    store = store or conf.security_cert_store
    digest = digest or conf.security_digest
    if not (key and cert and store):
        raise ImproperlyConfigured(SETTINGS_MISSING)
    try:
        with open(key, "rb") as kf, open(cert, "rb") as cf:
            key_pem, cert_pem = kf.read(), cf.read()
    except OSError as exc:
        raise ImproperlyConfigured(
            f"Cannot read the signing key or certificate: {exc.strerror}: {exc.filename!r}"
        ) from exc
    register_auth(key_pem, key_password, cert_pem, store, digest or "sha256", serializer)


def disable_untrusted_serializers(whitelist: Iterable[str] | None = None) -> None:
    """Disable every serializer but ``whitelist`` where no ``accept`` list applies."""
    registry.disable_insecure_serializers(whitelist)


__all__ = ["disable_untrusted_serializers", "setup_security"]
