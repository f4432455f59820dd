"""Access tokens: short-lived JWTs signed and verified with PyJWT.

Every token names its key in the header's ``kid``; verification takes that
key from the app's :class:`~._keys.KeySet` and verifies with it and its one
algorithm only (an unknown or missing ``kid`` is refused without trying
other keys; ``jku``, ``x5u`` and ``jwk`` headers are never read).  The header
carries ``typ: at+jwt`` (RFC 9068) and verification refuses any other type,
and every claim we issue is required on the way back in.  Verification never
touches the database.

A client reuses its access token for minutes, so verified tokens are kept in
a bounded cache keyed by the exact token string: a hit skips the signature
and claim parsing (PyJWT is most of the cost of a protected request) but
still checks ``exp`` against the clock, and the caller still asks the
revocation store.  Only tokens that passed full verification enter it.

PyJWT checks signatures and times but not shapes: it takes ``"1999999999"``
or ``true`` as a time and ``" 7"`` as a subject.  So a signed token is also
held to the shapes we issue, before it is cached: numeric times, a lifetime
no longer than ours, a canonical user id and session id.  A token failing
any of these was not made by :meth:`AccessTokens.issue`, whoever signed it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import math
import re
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

import jwt

from ._config import Settings
from ._keys import KeySet, SigningKey
from ._sid import session_belongs_to
from .errors import TokenExpired, TokenInvalid

TOKEN_TYPE = "at+jwt"
_ACCEPTED_TYPES = {TOKEN_TYPE, "application/" + TOKEN_TYPE}
REQUIRED_CLAIMS = ["sub", "iat", "exp", "iss", "aud", "jti", "sid"]
#: Distinct header segments whose key is remembered: a few per key (the
#: header of each key's tokens, plus variants a client library might make).
MAX_HEADER_KEYS = 32
#: Far longer than any token we issue; refused before any parsing.
MAX_TOKEN_LENGTH = 8192
#: ``users.id`` as :meth:`AccessTokens.issue` writes it: ASCII decimal, no
#: sign, spaces or leading zeros, so one user has exactly one ``sub``.
USER_ID = re.compile(r"[1-9][0-9]{0,9}")
#: ``users.id`` is a 32-bit INTEGER on PostgreSQL; a larger ``sub`` names no
#: user and would overflow SQLite's driver on the way to the database.
MAX_USER_ID = 2**31 - 1
#: Session ids: 32 lowercase hex characters (see :mod:`._sid`).
SESSION_ID = re.compile(r"[0-9a-f]{32}")
#: The time claims, each a JSON number when present.
TIME_CLAIMS = ("exp", "iat", "nbf")


def is_user_id(sub: str) -> bool:
    """Whether ``sub`` is the canonical ``sub`` of a row of the built-in
    users table.  The one place that rule lives: a user store with other ids
    passes its own check to :class:`AccessTokens` as ``is_subject``."""
    return USER_ID.fullmatch(sub) is not None and int(sub) <= MAX_USER_ID


def _is_number(value: object) -> bool:
    # ``type() is``: a JSON ``true`` decodes to a bool, which is an int.
    return type(value) is int or (type(value) is float and math.isfinite(value))


#: Claims the extension sets and checks; an app's own claims never replace them.
RESERVED_CLAIMS = frozenset(
    {"sub", "iat", "exp", "nbf", "iss", "aud", "jti", "sid", "typ"}
)

#: The app's own claims for a new access token; receives the ``sub`` (the
#: user id as a string) and returns a mapping of JSON-serializable values.
ClaimsLoader = Callable[[str], Mapping[str, Any]]


class AccessTokens:
    """Issues and verifies the access tokens of one application."""

    def __init__(
        self,
        settings: Settings,
        additional_claims: ClaimsLoader | None = None,
        *,
        is_subject: Callable[[str], bool] = is_user_id,
    ) -> None:
        self._additional_claims = additional_claims
        #: Swapped whole by :meth:`use_keys`; read once per token.
        self.keys = settings.keys
        self._session_secret = settings.refresh_secret
        self._issuer = settings.issuer
        self._audience = settings.audience
        self._lifetime = settings.access_expires
        self._leeway = settings.leeway
        #: ``exp - iat`` of any token we issued, in seconds.
        self._max_lifetime = (settings.access_expires + settings.leeway).total_seconds()
        self._is_subject = is_subject
        self._jwt = jwt.PyJWT(options={"require": REQUIRED_CLAIMS})
        self._cache: dict[str, dict[str, Any]] = {}
        self._cache_size = settings.token_cache_size
        #: Header segment -> the key it names (see :meth:`_key_for`).
        self._header_keys: dict[str, SigningKey] = {}

    def use_keys(self, keys: KeySet) -> None:
        """Sign and verify with ``keys`` from now on (a key rotation).

        The set is replaced in one assignment, so a concurrent request uses
        the old set or the new one, never a mix.  The cache is emptied: a
        token of a retired key must not outlive its key there.
        """
        self.keys = keys
        self._header_keys = {}
        self._cache.clear()

    def issue(
        self,
        user_id: int | str,
        session_id: str,
        extra_claims: Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> str:
        """A signed access token for ``user_id`` in session ``session_id``.

        Every token is issued here (register, login, refresh, password
        change), so the app's ``additional_claims`` loader runs for each, and
        sees changes to the user (e.g. a new email) at the next refresh.

        :raises ValueError: if the loader or ``extra_claims`` name a reserved
            claim: that is a bug of the app, so it fails loudly (a 500, with
            the message in the log) rather than being silently dropped.
        :raises TypeError: if the loader returns something other than a
            mapping.
        """
        now = now or datetime.now(timezone.utc)
        claims: dict[str, Any] = {}
        if self._additional_claims is not None:
            loaded = self._additional_claims(str(user_id))
            if not isinstance(loaded, Mapping):
                raise TypeError(
                    "The additional_claims loader must return a mapping of"
                    f" claims; it returned {type(loaded).__name__}."
                )
            claims.update(loaded)
        claims.update(extra_claims or {})
        if reserved := RESERVED_CLAIMS.intersection(claims):
            raise ValueError(
                "Additional access-token claims cannot set the reserved"
                f" claims {', '.join(sorted(reserved))}: flask_tokenauth sets"
                " and checks them itself. Rename the claim(s) in your"
                " additional_claims loader."
            )
        claims.update(
            sub=str(user_id),
            iat=int(now.timestamp()),
            exp=int((now + self._lifetime).timestamp()),
            iss=self._issuer,
            aud=self._audience,
            jti=uuid.uuid4().hex,
            sid=session_id,
        )
        key = self.keys.signing
        return self._jwt.encode(
            claims,
            key.signer,
            algorithm=key.algorithm,
            headers={"typ": TOKEN_TYPE, "kid": key.kid},
        )

    def verify(self, token: str) -> dict[str, Any]:
        """Return the claims of ``token``.

        :raises TokenExpired: the token was valid but ``exp`` has passed.
        :raises TokenInvalid: anything else is wrong with it.
        """
        cached = self._cache.get(token)
        if cached is not None:
            if cached["exp"] <= time.time() - self._leeway.total_seconds():
                self._cache.pop(token, None)
                raise TokenExpired()
            return dict(cached)
        claims = self._verify(token)
        if self._cache_size:
            self._remember(token, claims)
        return dict(claims)

    def _remember(self, token: str, claims: dict[str, Any]) -> None:
        if len(self._cache) >= self._cache_size:
            # Evict the oldest entry (dicts keep insertion order).  Another
            # thread may be doing the same: losing that race is harmless.
            with contextlib.suppress(KeyError, RuntimeError, StopIteration):
                del self._cache[next(iter(self._cache))]
        self._cache[token] = claims

    def _verify(self, token: str) -> dict[str, Any]:
        if len(token) > MAX_TOKEN_LENGTH:
            raise TokenInvalid()
        key = self._key_for(token.partition(".")[0])
        try:
            decoded = self._jwt.decode_complete(
                token,
                key.verifier,
                algorithms=[key.algorithm],
                issuer=self._issuer,
                audience=self._audience,
                leeway=self._leeway,
            )
        except jwt.ExpiredSignatureError as e:
            raise TokenExpired() from e
        except jwt.PyJWTError as e:
            raise TokenInvalid() from e
        except (ValueError, TypeError) as e:  # defensive: odd input shapes
            raise TokenInvalid() from e
        typ = decoded["header"].get("typ")
        if not isinstance(typ, str) or typ.lower() not in _ACCEPTED_TYPES:
            raise TokenInvalid()
        claims: dict[str, Any] = decoded["payload"]
        self._check_shapes(claims)
        # Only the server can make a session id for a user (see _sid.py): a
        # token naming another user's session is refused here, whatever the
        # revocation store.  Cached tokens passed this once already.
        if not session_belongs_to(self._session_secret, claims["sid"], claims["sub"]):
            raise TokenInvalid()
        return claims

    def _key_for(self, segment: str) -> SigningKey:
        """The key the header segment ``segment`` names by its ``kid``, if
        its ``alg`` is that key's.  Nothing else in the header (``jku``,
        ``x5u``, ``jwk``, ``x5c``) is ever used to find a key.

        Every token of one key has the same header segment, so the answer is
        remembered per segment (for a few segments, and only for those that
        named a key): a never-seen token then costs what ``jwt.decode``
        with a loaded key costs, without parsing its header twice.
        """
        key = self._header_keys.get(segment)
        if key is not None:
            return key
        header = _header(segment)
        key = self.keys.get(header.get("kid"))
        if key is None or header.get("alg") != key.algorithm:
            raise TokenInvalid()
        if len(self._header_keys) < MAX_HEADER_KEYS:
            self._header_keys[segment] = key
        return key

    def _check_shapes(self, claims: Mapping[str, Any]) -> None:
        """Refuse signed claims that :meth:`issue` would never have made.

        Run once per token, before it is cached: the cache compares ``exp``
        with a float, and the revocation stores and user loader read ``sub``
        and ``sid`` as the ids they name.
        """
        if not all(_is_number(claims[k]) for k in TIME_CLAIMS if k in claims):
            raise TokenInvalid()
        if claims["exp"] - claims["iat"] > self._max_lifetime:
            raise TokenInvalid()
        sub, sid = claims["sub"], claims["sid"]
        if not isinstance(sub, str) or not self._is_subject(sub):
            raise TokenInvalid()
        if not isinstance(sid, str) or SESSION_ID.fullmatch(sid) is None:
            raise TokenInvalid()


def _header(segment: str) -> dict[str, Any]:
    """A token's JOSE header segment, decoded but unverified: only to choose
    the key.  PyJWT decodes it again, and checks it, when it verifies."""
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        header = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError) as e:
        raise TokenInvalid() from e
    if not isinstance(header, dict):
        raise TokenInvalid()
    return header
