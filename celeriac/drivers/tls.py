"""TLS errors that a setting fixes: a broker or result store whose certificate this client
does not trust. Both py-amqp (``ssl.SSLCertVerificationError``) and redis-py (a
``ConnectionError`` carrying the SSL message) report it; the hint names the setting."""

from __future__ import annotations

import ssl

#: The option names of ``broker_use_ssl`` / ``redis_backend_use_ssl`` per client library:
#: (CA file, verify mode).
PY_AMQP_NAMES = ("ca_certs", "cert_reqs")
REDIS_PY_NAMES = ("ssl_ca_certs", "ssl_cert_reqs")


def untrusted_certificate(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) is a refused server certificate."""
    seen: BaseException | None = exc
    for _ in range(5):  # a short cause chain; never loop on a cycle
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        if "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def certificate_hint(exc: BaseException, setting: str, names: tuple[str, str]) -> str:
    """For an error message: when ``exc`` is a refused certificate, what to write in
    ``setting`` (with the client library's option ``names``); otherwise ``""``."""
    if not untrusted_certificate(exc):
        return ""
    ca_key, reqs_key = names
    return (
        f" (the server's TLS certificate is not trusted: set {setting}={{'{ca_key}': "
        f"'<the CA file that signed it>', '{reqs_key}': ssl.CERT_REQUIRED}})"
    )


__all__ = ["PY_AMQP_NAMES", "REDIS_PY_NAMES", "certificate_hint", "untrusted_certificate"]
