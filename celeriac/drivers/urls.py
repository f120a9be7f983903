"""Broker and store URLs as they may be shown: every password masked, as Celery shows them."""

from __future__ import annotations

import re

#: What a password becomes in banners, log lines and errors (kombu's ``maybe_sanitize_url``).
MASK = "**"


def mask_url(url: str, mask: str = MASK) -> str:
    """``url`` with every password replaced by ``mask`` (also in ``;``-separated lists)."""
    return ";".join(_mask_one(part, mask) for part in url.split(";"))


#: Query parameters that carry a secret (redis-py reads ``?password=``).
_SECRET_PARAM = re.compile(r"([?&](?:password|passwd|pass|secret|token)=)[^&#]*", re.I)


def _mask_one(url: str, mask: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    rest = _SECRET_PARAM.sub(lambda m: m.group(1) + mask, rest)
    authority, slash, path = rest.partition("/")
    if "?" in authority and not slash:  # redis://host?password=...: no path before the query
        authority, query = authority.split("?", 1)
        path, slash = "?" + query, ""
    # The last '@' ends the user info: an unencoded '@' in a password stays masked.
    userinfo, at, host = authority.rpartition("@")
    user, colon, password = userinfo.partition(":")
    if not (at and colon and password):
        return f"{scheme}://{rest}"
    return f"{scheme}://{user}:{mask}@{host}{slash}{path}"


__all__ = ["MASK", "mask_url"]
