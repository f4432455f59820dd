"""Session ids that name their owner.

A session id (the ``sid`` claim, the ``tokenauth_sessions`` key) is 16 hex
characters of randomness followed by 16 hex characters of
HMAC-SHA256(refresh secret, ``"tokenauth-sid:<user id>:<random part>"``):
still 32 lowercase hex characters, but only the server can make one, and
only for the user it names.  So an access token whose ``sid`` is not one of
its ``sub``'s sessions is refused by every revocation store, Redis and
``off`` included, which never look the session up in the database.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

#: Hex characters of randomness, then as many of the tag.
HALF = 16
_SESSION_ID = re.compile(r"[0-9a-f]{32}")


#: An HMAC keyed with each secret seen, copied for each tag: keying costs
#: as much as the rest of the tag, and every access token checks one.
_KEYED: dict[bytes, hmac.HMAC] = {}
#: A process has one refresh secret per app; tests make many.
_MAX_KEYED = 16


def _tag(secret: bytes, user_id: str, random_part: str) -> str:
    keyed = _KEYED.get(secret)
    if keyed is None:
        if len(_KEYED) >= _MAX_KEYED:
            _KEYED.clear()
        keyed = _KEYED[secret] = hmac.new(secret, digestmod=hashlib.sha256)
    mac = keyed.copy()
    # ``surrogatepass``: a ``sub`` decoded from JSON may hold a lone surrogate.
    mac.update(
        f"tokenauth-sid:{user_id}:{random_part}".encode("utf-8", "surrogatepass")
    )
    return mac.hexdigest()[:HALF]


def new_session_id(secret: bytes, user_id: int | str) -> str:
    """A fresh session id bound to ``user_id``.

    :param secret: the refresh-token secret (never sent to clients).
    """
    random_part = secrets.token_hex(HALF // 2)
    return random_part + _tag(secret, str(user_id), random_part)


def session_belongs_to(secret: bytes, sid: str, sub: str) -> bool:
    """Whether ``sid`` was made by :func:`new_session_id` for user ``sub``
    (compared in constant time)."""
    if not _SESSION_ID.fullmatch(sid):
        return False
    # Both ASCII (hex) strings, which ``compare_digest`` takes as they are.
    return hmac.compare_digest(sid[HALF:], _tag(secret, sub, sid[:HALF]))
