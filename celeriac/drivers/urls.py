"""Broker and store URLs as they may be shown: every password masked.

(``backends.helpers.mask_password`` masks with ``**``, as Celery's result stores do; the two
are not merged here.)
"""

from __future__ import annotations


def mask_url(url: str) -> str:
    """``url`` with every password replaced by ``****`` (also in ``;``-separated lists)."""
    return ";".join(_mask_one(part) for part in url.split(";"))


def _mask_one(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    # The last '@' ends the user info: an unencoded '@' in a password stays masked.
    userinfo, at, host = authority.rpartition("@")
    user, colon, password = userinfo.partition(":")
    if not (at and colon and password):
        return url
    return f"{scheme}://{user}:****@{host}{slash}{path}"
