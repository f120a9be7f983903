"""Broker and store URLs as they may be shown: every password masked, as Celery shows them."""

from __future__ import annotations

#: What a password becomes in banners, log lines and errors (kombu's ``maybe_sanitize_url``).
MASK = "**"


def mask_url(url: str, mask: str = MASK) -> str:
    """``url`` with every password replaced by ``mask`` (also in ``;``-separated lists)."""
    return ";".join(_mask_one(part, mask) for part in url.split(";"))


def _mask_one(url: str, mask: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    # The last '@' ends the user info: an unencoded '@' in a password stays masked.
    userinfo, at, host = authority.rpartition("@")
    user, colon, password = userinfo.partition(":")
    if not (at and colon and password):
        return url
    return f"{scheme}://{user}:{mask}@{host}{slash}{path}"


__all__ = ["MASK", "mask_url"]
