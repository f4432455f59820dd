"""Access tokens: short-lived JWTs, signed and verified with PyJWT's
algorithm objects.

Every token names its key in the header's ``kid``; verification takes that
key from the app's :class:`~._keys.KeySet` and verifies with it and its one
algorithm only (an unknown or missing ``kid`` is refused without trying
other keys; ``jku``, ``x5u`` and ``jwk`` headers are never read).  The header
carries ``typ: at+jwt`` (RFC 9068) and verification refuses any other type,
and every claim we issue is required on the way back in.  Verification never
touches the database.

A never-seen token is not given to ``jwt.decode``, which would cost twice
what the work itself does (see :mod:`._jws`): the token is split and decoded
there, the signature is checked by PyJWT's algorithm with the key prepared
when it was loaded (:meth:`~._keys.SigningKey.verify`), and the claims are
checked here, as ``jwt.decode`` checks them and more strictly.  Every token
of one key has the same header segment, so the key a segment names is
remembered and a header is parsed once, not per token.

A token is issued at every login and every refresh, and is not made by
``jwt.encode`` either, which would also prepare the key again for every
token: the header segment is serialized once per signing key, the claims
once per token, both as ``jwt.encode`` serializes them (compact JSON, the
header's fields sorted, base64url without padding), and the signature is
made by PyJWT's algorithm with the key prepared when it was loaded
(:meth:`~._keys.SigningKey.sign`).  A test holds the tokens to be the ones
``jwt.encode`` makes, byte for byte.

A client reuses its access token for minutes, so verified tokens are kept in
a bounded cache keyed by the exact ``Authorization`` header they came in (or
the token string, for a caller that has no header): a hit skips the header's
parsing, the signature and the claims' parsing but still checks ``exp``
against the clock, and the caller still asks the revocation store.  Only
tokens that passed full verification enter it.

PyJWT checks signatures and times but not shapes: it takes ``"1999999999"``
or ``true`` as a time and ``" 7"`` as a subject.  So a signed token is also
held to the shapes we issue, before it is cached: numeric times, a lifetime
no longer than ours, a canonical user id and session id.  A token failing
any of these was not made by :meth:`AccessTokens.issue`, whoever signed it.
"""

from __future__ import annotations

import binascii
import json
import math
import os
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from . import _jws
from ._authlevel import Assurance
from ._claims import EMAIL_VERIFIED, NOT_GIVEN, AppClaims
from ._claims import RESERVED_CLAIMS as RESERVED_CLAIMS
from ._claims import ClaimsLoader as ClaimsLoader
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


def is_user_id(sub: str) -> bool:
    """Whether ``sub`` is the canonical ``sub`` of a row of the built-in
    users table.  The one place that rule lives: a user store with other ids
    passes its own check to :class:`AccessTokens` as ``is_subject``."""
    return USER_ID.fullmatch(sub) is not None and int(sub) <= MAX_USER_ID


#: ``jwt.encode``'s JSON: compact, ASCII only, keys in insertion order.
_JSON = json.JSONEncoder(separators=(",", ":"))
#: The standard base64 alphabet :mod:`binascii` writes, to base64url.
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _segment(data: bytes) -> bytes:
    """``data`` as one base64url segment without padding, as PyJWT writes
    it (one C call and one ``translate``, not three Python-level calls)."""
    return binascii.b2a_base64(data, newline=False).translate(_TO_URLSAFE, b"=")


def header_segment(key: SigningKey) -> bytes:
    """The header segment of every access token ``key`` signs: ``alg``,
    ``kid`` and ``typ``, sorted as ``jwt.encode`` sorts a header."""
    header = {"alg": key.algorithm, "kid": key.kid, "typ": TOKEN_TYPE}
    return _segment(json.dumps(header, separators=(",", ":"), sort_keys=True).encode())


def _is_number(value: object) -> bool:
    # ``type() is``: a JSON ``true`` decodes to a bool, which is an int.
    return type(value) is int or (type(value) is float and math.isfinite(value))


class AccessTokens:
    """Issues and verifies the access tokens of one application."""

    def __init__(
        self,
        settings: Settings,
        additional_claims: ClaimsLoader | None = None,
        *,
        is_subject: Callable[[str], bool] = is_user_id,
        load_user: Callable[[str], Any] | None = None,
    ) -> None:
        self._claims = AppClaims(additional_claims, load_user)
        #: Swapped whole by :meth:`use_keys`; read once per token.
        self.keys = settings.keys
        self._session_secret = settings.refresh_secret
        self._issuer = settings.issuer
        self._audience = settings.audience
        self._lifetime_seconds = settings.access_expires.total_seconds()
        self._leeway = settings.leeway
        self._leeway_seconds = settings.leeway.total_seconds()
        #: ``exp - iat`` of any token we issued, in seconds.
        self._max_lifetime = (settings.access_expires + settings.leeway).total_seconds()
        self._is_subject = is_subject
        #: The signing key and its tokens' header segment and dot, swapped
        #: together (see :meth:`use_keys`).
        self._signing = self._signing_of(self.keys)
        self._cache: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._cache_size = settings.token_cache_size
        #: Session id -> the user it was proven to belong to.
        self._session_owners: dict[str, str] = {}
        #: Header segment -> the key it names (see :meth:`_key_for`).
        self._header_keys: dict[bytes, SigningKey] = {}

    def use_keys(self, keys: KeySet) -> None:
        """Sign and verify with ``keys`` from now on (a key rotation).

        The set is replaced in one assignment, so a concurrent request uses
        the old set or the new one, never a mix.  The cache is emptied: a
        token of a retired key must not outlive its key there.
        """
        self.keys = keys
        # After ``keys``: a token of the new key is verified with the new set.
        self._signing = self._signing_of(keys)
        self._header_keys = {}
        self._cache.clear()

    @staticmethod
    def _signing_of(keys: KeySet) -> tuple[SigningKey, bytes]:
        return keys.signing, header_segment(keys.signing) + b"."

    def issue(
        self,
        user_id: int | str,
        session_id: str,
        extra_claims: Mapping[str, Any] | None = None,
        now: datetime | None = None,
        *,
        user: Any = NOT_GIVEN,
        identity: str | None = None,
        email_verified: bool | None = None,
        assurance: Assurance | None = None,
    ) -> str:
        """A signed access token for ``user_id`` in session ``session_id``.

        Every token is issued here (register, login, refresh, password
        change), so the app's ``additional_claims`` loader runs for each, and
        sees changes to the user (e.g. a new email) at the next refresh.

        :param user: the user as :data:`~flask_tokenauth.current_user` would
            be, if the caller has it (``login_user``, a password change): a
            loader that takes the user is then given it without loading it
            again.  Otherwise it is loaded as ``current_user`` loads it.
        :param email_verified: the ``email_verified`` claim, when address
            verification is on (see :mod:`._verification`); ``None``: no
            such claim, and the token is what it was before the feature.
        :param assurance: the session's ``amr``, ``aal``, ``auth_time`` (and
            restriction) claims (see :mod:`._authlevel`).
        :raises ValueError: if the loader or ``extra_claims`` name a reserved
            claim (``email_verified`` too while verification is on): that is
            a bug of the app, so it fails loudly (a 500, with the message in
            the log) rather than being silently dropped.
        :raises TypeError: if the loader returns something other than a
            mapping.
        """
        issued_at = time.time() if now is None else now.timestamp()
        claims = self._claims.for_token(user_id, extra_claims, user)
        claims.update(
            sub=str(user_id),
            iat=int(issued_at),
            exp=int(issued_at + self._lifetime_seconds),
            iss=self._issuer,
            aud=self._audience,
            # 128 random bits, as hex: a uuid4 costs four times as much.
            jti=os.urandom(16).hex(),
            sid=session_id,
        )
        if identity is not None:  # the session's binding, see ._identity
            claims["idf"] = identity
        if email_verified is not None:
            if EMAIL_VERIFIED in claims:
                raise ValueError(
                    "The additional_claims loader sets email_verified, which"
                    " flask_tokenauth sets itself while TOKENAUTH_EMAIL_VERIFICATION"
                    " is on: rename your claim."
                )
            claims[EMAIL_VERIFIED] = email_verified
        if assurance is not None:
            claims.update(assurance.claims())
        key, header = self._signing
        signing_input = header + _segment(_JSON.encode(claims).encode())
        return (signing_input + b"." + _segment(key.sign(signing_input))).decode()

    def cached(self, key: str) -> dict[str, Any] | None:
        """The claims of a token verified before and cached under ``key``
        (see :meth:`verify`), or ``None``; a cached token is still checked
        against the clock.

        :raises TokenExpired: the token was valid but ``exp`` has passed.
        """
        cached = self._cache.get(key)
        if cached is None:
            return None
        if cached["exp"] <= time.time() - self._leeway_seconds:
            self._cache.pop(key, None)
            raise TokenExpired()
        return cached.copy()  # the request's own: a view may change it

    def verify(self, token: str, *, cache_as: str | None = None) -> dict[str, Any]:
        """Return the claims of ``token``.

        :param cache_as: the key to look the token up and cache its claims
            under, if not the token: the whole ``Authorization`` header it
            came in, so that the next request with the same header finds
            them with :meth:`cached` without parsing the header again.  A
            header names exactly one token, and has a space where a token
            never does, so the two kinds of key cannot collide.
        :raises TokenExpired: the token was valid but ``exp`` has passed.
        :raises TokenInvalid: anything else is wrong with it.
        """
        key = token if cache_as is None else cache_as
        cached = self.cached(key)
        if cached is not None:
            return cached
        claims = self._verify(token)
        if self._cache_size:
            self._remember(key, claims)
        return dict(claims)

    def _remember(self, token: str, claims: dict[str, Any]) -> None:
        if len(self._cache) >= self._cache_size:
            # Evict the oldest entry: O(1) in an OrderedDict, where a plain
            # dict's ``next(iter(...))`` walks over every slot deleted
            # before it (microseconds per token with a full cache).
            # Another thread may be evicting too: losing that race is
            # harmless.
            try:  # noqa: SIM105 - free unless raised; runs for every new token
                self._cache.popitem(last=False)
            except KeyError:
                pass
        self._cache[token] = claims

    def _verify(self, token: str) -> dict[str, Any]:
        if len(token) > MAX_TOKEN_LENGTH:
            raise TokenInvalid()
        header, signing_input, payload, signature = _jws.split(token)
        key = self._header_keys.get(header) or self._key_for(header)
        if not key.verify(signing_input, _jws.decode_segment(signature)):
            raise TokenInvalid()
        # The header is remembered only once a signature made with its key
        # passes: unsigned headers cannot crowd out those of real tokens.
        if header not in self._header_keys and len(self._header_keys) < MAX_HEADER_KEYS:
            self._header_keys[header] = key
        claims = _jws.json_object(_jws.decode_segment(payload))
        self._check_claims(claims)
        return claims

    def _key_for(self, segment: bytes) -> SigningKey:
        """The key the header segment ``segment`` names by its ``kid``, if
        its ``alg`` is that key's.  Nothing else in the header (``jku``,
        ``x5u``, ``jwk``, ``x5c``) is ever used to find a key.

        Every token of one key has the same header segment, so
        :meth:`_verify` remembers the answer per segment (for a few
        segments): a never-seen token then does not parse its header.
        """
        header = _jws.json_object(_jws.decode_segment(segment))
        key = self.keys.get(header.get("kid"))
        if key is None or header.get("alg") != key.algorithm:
            raise TokenInvalid()
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in _ACCEPTED_TYPES:
            raise TokenInvalid()
        # Extensions we never use: ``crit`` names the ones a verifier must
        # understand, and ``b64: false`` (RFC 7797) changes what is signed.
        if "crit" in header or "b64" in header:
            raise TokenInvalid()
        return key

    def _check_claims(self, claims: dict[str, Any]) -> None:
        """The checks ``jwt.decode`` makes of the claims (with our required
        claims, issuer, audience and leeway), in its order, and the shapes
        :meth:`issue` makes, which PyJWT does not check.

        Run once per token, before it is cached: the cache compares ``exp``
        with a float, and the revocation stores and user loader read ``sub``
        and ``sid`` as the ids they name.
        """
        get = claims.get
        for name in REQUIRED_CLAIMS:
            if get(name) is None:
                raise TokenInvalid()
        iat, exp = claims["iat"], claims["exp"]
        if not (_is_number(iat) and _is_number(exp)):
            raise TokenInvalid()
        now = time.time()
        leeway = self._leeway_seconds
        # ``int()``: PyJWT compares the times truncated to whole seconds.
        if int(iat) > now + leeway:
            raise TokenInvalid()
        if "nbf" in claims:
            nbf = claims["nbf"]
            if not _is_number(nbf) or int(nbf) > now + leeway:
                raise TokenInvalid()
        if int(exp) <= now - leeway:
            raise TokenExpired()
        # The configured issuer and audience are strings: equal to one means
        # being a string.
        if claims["iss"] != self._issuer:
            raise TokenInvalid()
        aud = claims["aud"]
        if aud != self._audience and not (
            type(aud) is list
            and self._audience in aud
            and all(type(a) is str for a in aud)
        ):
            raise TokenInvalid()
        if exp - iat > self._max_lifetime:
            raise TokenInvalid()
        sub, sid, jti = claims["sub"], claims["sid"], claims["jti"]
        if type(jti) is not str or type(sub) is not str or not self._is_subject(sub):
            raise TokenInvalid()
        # Only the server can make a session id for a user (see _sid.py): a
        # token naming another user's session is refused here, whatever the
        # revocation store.  It also checks the shape: 32 lowercase hex
        # characters.
        if type(sid) is not str:
            raise TokenInvalid()
        if self._session_owners.get(sid) != sub:
            if not session_belongs_to(self._session_secret, sid, sub):
                raise TokenInvalid()
            self._remember_owner(sid, sub)

    def _remember_owner(self, sid: str, sub: str) -> None:
        """Remember that session ``sid`` was proven to be user ``sub``'s.

        Every token of a session carries its id, and proving it costs an
        HMAC, as much as the token's own signature: so a process proves it
        once per session, not once per token.  Only proofs are remembered,
        and they hold for as long as the refresh secret does, which is the
        life of this object.  As many sessions as cached tokens.
        """
        if self._cache_size:
            if len(self._session_owners) >= self._cache_size:
                self._session_owners.clear()
            self._session_owners[sid] = sub
