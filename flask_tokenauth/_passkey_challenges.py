"""The challenges of the passkey ceremonies: single use, five minutes, and
bound to whoever asked for them.

Each challenge (32 random bytes) is a row of
``tokenauth_webauthn_challenges`` until it is spent.  The client never
names the row: the authenticator signs ``clientDataJSON``, which carries the
challenge, so the challenge read from it *is* the key.  Spending it is one
``DELETE ... WHERE challenge = :c AND purpose = :p AND <binding> AND
expires_at > now``: two requests presenting it cannot both delete it, on
PostgreSQL as on SQLite, and a refused ceremony has spent it too.  The
``webauthn`` library then checks that the signed challenge is that one.

A challenge is bound to:

- the caller's session (its ``sid``) for ``register`` and ``verify``: a
  challenge fetched with one session's token is refused with another's;
- a cookie for the password-less ``login``, which has no session yet: an
  HttpOnly cookie of 256 random bits whose SHA-256 is on the row, set by
  ``/passkeys/login/options`` (kept if the browser has one already, so two
  tabs each get a challenge that works), for as long as a challenge lives.

Rows past their expiry are deleted whenever a challenge is issued.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
from datetime import datetime, timedelta, timezone
from typing import Any, cast

from flask import Response, request
from sqlalchemy import Connection, Table, and_, delete, insert

from ._headers import cookie_path
from ._state import TokenAuthState
from .errors import PasskeyChallengeInvalid, PasskeyInvalid
from .models import WebAuthnChallenge

_challenges = cast(Table, WebAuthnChallenge.__table__)

REGISTER = "register"
LOGIN = "login"
VERIFY = "verify"
#: How long a ceremony may take, from its options to its answer (also the
#: ``timeout`` the options give the browser).
LIFETIME = timedelta(minutes=5)
_CHALLENGE_BYTES = 32
#: The sign-in cookie's name: the refresh cookie's, with this added (so
#: that it has the same prefix, ``__Host-`` or ``__Secure-``).
COOKIE_SUFFIX = "_passkey"
_COOKIE_VALUE = re.compile(r"[A-Za-z0-9_-]{43}")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(value: str) -> bytes:
    """:raises ValueError: not base64url."""
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as e:
        raise ValueError("not base64url") from e


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def issue(
    conn: Connection,
    purpose: str,
    *,
    session_id: str | None = None,
    binding: str | None = None,
) -> bytes:
    """A new challenge for ``purpose``, bound to ``session_id`` or to the
    sign-in cookie value ``binding``, in the caller's transaction."""
    now = _now()
    conn.execute(delete(_challenges).where(_challenges.c.expires_at <= now))
    challenge = secrets.token_bytes(_CHALLENGE_BYTES)
    conn.execute(
        insert(_challenges).values(
            challenge=b64url(challenge),
            purpose=purpose,
            session_id=session_id,
            binding=None if binding is None else _digest(binding),
            expires_at=now + LIFETIME,
        )
    )
    return challenge


def signed_challenge(credential: dict[str, Any]) -> str:
    """The challenge in the credential's ``clientDataJSON``, unverified
    (the signature over it is checked after it is spent).

    :raises PasskeyInvalid: no readable ``clientDataJSON`` or challenge.
    """
    response = credential.get("response")
    data = response.get("clientDataJSON") if isinstance(response, dict) else None
    if not isinstance(data, str) or len(data) > 4096:
        raise PasskeyInvalid()
    try:
        challenge = json.loads(unb64url(data)).get("challenge")
    except (ValueError, AttributeError, UnicodeDecodeError):
        raise PasskeyInvalid() from None
    if not isinstance(challenge, str) or not 0 < len(challenge) <= 64:
        raise PasskeyInvalid()
    return challenge


def spend(
    conn: Connection,
    challenge: str,
    purpose: str,
    *,
    session_id: str | None = None,
    binding: str | None = None,
) -> bytes:
    """Spend ``challenge`` for ``purpose``, if it is bound to ``session_id``
    (or to the cookie value ``binding``) and not expired: the challenge, as
    bytes.  Commit before verifying: a refused ceremony spends it too.

    :raises PasskeyChallengeInvalid: unknown, spent, expired or someone
        else's.
    """
    if session_id is not None:
        bound = _challenges.c.session_id == session_id
    elif binding is not None:
        bound = _challenges.c.binding == _digest(binding)
    else:
        raise PasskeyChallengeInvalid()
    result = conn.execute(
        delete(_challenges).where(
            and_(
                _challenges.c.challenge == challenge,
                _challenges.c.purpose == purpose,
                bound,
                _challenges.c.expires_at > _now(),
            )
        )
    )
    if result.rowcount != 1:
        raise PasskeyChallengeInvalid()
    return unb64url(challenge)


# -- The sign-in cookie ----------------------------------------------------------


def cookie_name(state: TokenAuthState) -> str:
    return state.settings.cookie_name + COOKIE_SUFFIX


def presented_binding(state: TokenAuthState) -> str | None:
    """The sign-in cookie's value, if the request has a well-formed one."""
    value = request.cookies.get(cookie_name(state))
    return value if value and _COOKIE_VALUE.fullmatch(value) else None


def new_binding() -> str:
    return secrets.token_urlsafe(32)


def _attributes(state: TokenAuthState) -> dict[str, Any]:
    """The refresh cookie's attributes (path, domain, ``Secure``,
    ``SameSite``): the same page that signs in holds both."""
    settings = state.settings
    return {
        "path": cookie_path(settings),
        "domain": settings.cookie_domain,
        "secure": settings.cookie_secure,
        "httponly": True,
        "samesite": settings.cookie_samesite,
    }


def set_binding_cookie(response: Response, state: TokenAuthState, value: str) -> None:
    response.set_cookie(
        cookie_name(state),
        value,
        max_age=int(LIFETIME.total_seconds()),
        **_attributes(state),
    )
