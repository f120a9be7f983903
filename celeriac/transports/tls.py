"""TLS errors that a setting fixes: a broker or result store whose certificate this client
does not trust. Both py-amqp (``ssl.SSLCertVerificationError``) and redis-py (a
``ConnectionError`` carrying the SSL message) report it; the hint names the setting."""

from __future__ import annotations

import ssl


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


def certificate_hint(setting: str, *, ca_key: str, reqs_key: str) -> str:
    """What to write in ``setting`` (``broker_use_ssl``, ``redis_backend_use_ssl``), with the
    client library's option names (py-amqp: ``ca_certs``; redis-py: ``ssl_ca_certs``)."""
    return (
        f" (the server's TLS certificate is not trusted: set {setting}={{'{ca_key}': "
        f"'<the CA file that signed it>', '{reqs_key}': ssl.CERT_REQUIRED}})"
    )


__all__ = ["certificate_hint", "untrusted_certificate"]
