"""Issuing access tokens against ``jwt.encode``.

:meth:`AccessTokens.issue` no longer calls ``jwt.encode`` (the header is
serialized once per key, the key prepared once at load), so it is held to
it here: for the same claims, header and key, our token is the one
``jwt.encode`` makes, byte for byte, for every algorithm whose signatures
are deterministic (HMAC, EdDSA, RSA PKCS#1 v1.5); an ES256 token has the
same header and payload segments and ``jwt.decode`` accepts its signature.
And whatever we issue, we verify, across key rotations.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import jwt
import pytest

from flask_tokenauth import TokenInvalid
from flask_tokenauth._access import AccessTokens
from flask_tokenauth._config import Settings
from flask_tokenauth._jws import decode_segment, split
from flask_tokenauth._keys import ALGORITHMS, KeySet, SigningKey, generate
from flask_tokenauth._sid import new_session_id

from .conftest import base_config

#: Signatures that are a function of the key and the input alone.
DETERMINISTIC = ("HS256", "HS384", "HS512", "EdDSA", "RS256")
SUB = "42"
#: App claims that exercise the JSON: escapes, non-ASCII, nesting, numbers.
APP_CLAIMS: dict[str, Any] = {
    "name": 'Zoë "Z" \\ ☃ \U0001f600',
    "roles": ["admin", "ops"],
    "org": {"id": 7, "ratio": 0.25, "active": True, "parent": None},
}


def new_key(algorithm: str, kid: str | None = None) -> SigningKey:
    """A signing key of ``algorithm``, named ``kid`` if given."""
    if algorithm.startswith("HS"):
        secret = bytes(range(64))
        if kid is None:
            return SigningKey.hmac(secret, algorithm, "TEST")
        return SigningKey(kid, algorithm, secret, secret)
    private = generate(algorithm)
    key = SigningKey.load(private, "TEST", private=True)
    return key if kid is None else SigningKey(kid, algorithm, key.verifier, private)


@pytest.fixture(scope="module")
def signing_keys() -> dict[str, SigningKey]:
    """One key per algorithm (RSA generation is slow: once per module)."""
    return {algorithm: new_key(algorithm) for algorithm in ALGORITHMS}


@pytest.fixture
def settings() -> Settings:
    return Settings.from_mapping(base_config())


def tokens_for(settings: Settings, key: SigningKey) -> AccessTokens:
    tokens = AccessTokens(settings)
    tokens.use_keys(KeySet(key))
    return tokens


def sid_of(settings: Settings) -> str:
    return new_session_id(settings.refresh_secret, SUB)


def pyjwt_token(token: str, key: SigningKey) -> str:
    """What ``jwt.encode`` makes of ``token``'s claims (in their order), with
    the header :meth:`AccessTokens.issue` asks for, and ``key``."""
    claims = jwt.decode(token, options={"verify_signature": False})
    return jwt.encode(
        claims,
        key.signer,
        algorithm=key.algorithm,
        headers={"typ": "at+jwt", "kid": key.kid},
    )


def issued(
    settings: Settings, key: SigningKey, extra: dict[str, Any] | None = None
) -> str:
    return tokens_for(settings, key).issue(SUB, sid_of(settings), extra)


@pytest.mark.parametrize("extra", [None, APP_CLAIMS], ids=["ours", "app-claims"])
@pytest.mark.parametrize("algorithm", DETERMINISTIC)
def test_tokens_are_the_ones_jwt_encode_makes(
    settings: Settings,
    signing_keys: dict[str, SigningKey],
    algorithm: str,
    extra: dict[str, Any] | None,
) -> None:
    key = signing_keys[algorithm]
    token = issued(settings, key, extra)
    assert token == pyjwt_token(token, key)


@pytest.mark.parametrize("extra", [None, APP_CLAIMS], ids=["ours", "app-claims"])
def test_es256_tokens_match_jwt_encode_up_to_the_signature(
    settings: Settings, signing_keys: dict[str, SigningKey], extra: Any
) -> None:
    """ECDSA signs with a random nonce: the signed part must be the one
    ``jwt.encode`` signs, and ``jwt.decode`` must accept the signature."""
    key = signing_keys["ES256"]
    token = issued(settings, key, extra)
    reference = pyjwt_token(token, key)
    assert token.rsplit(".", 1)[0] == reference.rsplit(".", 1)[0]
    assert token != reference  # two signatures of one input differ
    claims = jwt.decode(
        token,
        key.verifier,
        algorithms=["ES256"],
        audience=settings.audience,
        issuer=settings.issuer,
    )
    assert claims["sub"] == SUB
    assert {k: claims[k] for k in APP_CLAIMS if k in claims} == (extra or {})


@pytest.mark.parametrize("algorithm", ["HS256", "EdDSA"])
def test_header_fields_are_escaped_as_jwt_encode_escapes_them(
    settings: Settings, algorithm: str
) -> None:
    """A JWK's ``kid`` may be any string: the header segment serializes it
    as PyJWT does."""
    key = new_key(algorithm, kid='clé "1"/\\2 ☃')
    token = issued(settings, key)
    assert token == pyjwt_token(token, key)
    assert jwt.get_unverified_header(token) == {
        "alg": algorithm,
        "kid": key.kid,
        "typ": "at+jwt",
    }


def test_claims_and_their_order(
    settings: Settings, signing_keys: dict[str, SigningKey]
) -> None:
    """The app's claims first, then ours, with times from ``now``."""
    now = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)
    tokens = tokens_for(settings, signing_keys["HS256"])
    sid = sid_of(settings)
    token = tokens.issue(int(SUB), sid, {"app": 1}, now=now)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert list(claims) == ["app", "sub", "iat", "exp", "iss", "aud", "jti", "sid"]
    assert claims["iat"] == int(now.timestamp())
    assert claims["exp"] == int((now + settings.access_expires).timestamp())
    assert (claims["sub"], claims["sid"]) == (SUB, sid)
    assert (claims["iss"], claims["aud"]) == (settings.issuer, settings.audience)
    assert len(claims["jti"]) == 32 and int(claims["jti"], 16) >= 0
    other = jwt.decode(tokens.issue(SUB, sid), options={"verify_signature": False})
    assert other["jti"] != claims["jti"]
    assert abs(other["iat"] - time.time()) <= 2


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_what_we_issue_we_verify(
    settings: Settings, signing_keys: dict[str, SigningKey], algorithm: str
) -> None:
    key = signing_keys[algorithm]
    tokens = tokens_for(settings, key)
    token = tokens.issue(SUB, sid_of(settings), APP_CLAIMS)
    _, signing_input, _, signature = split(token)
    assert key.verify(signing_input, decode_segment(signature))
    assert not key.verify(signing_input + b"x", decode_segment(signature))
    claims = tokens.verify(token)
    assert claims["sub"] == SUB and claims["name"] == APP_CLAIMS["name"]


def test_a_rotation_signs_with_the_new_key_and_keeps_the_old_tokens(
    settings: Settings, signing_keys: dict[str, SigningKey]
) -> None:
    old, new = signing_keys["HS256"], signing_keys["EdDSA"]
    tokens = tokens_for(settings, old)
    sid = sid_of(settings)
    before = tokens.issue(SUB, sid)
    tokens.use_keys(KeySet(new, [old]))
    after = tokens.issue(SUB, sid)
    assert jwt.get_unverified_header(after)["kid"] == new.kid
    assert after == pyjwt_token(after, new)
    assert tokens.verify(before)["sub"] == tokens.verify(after)["sub"] == SUB
    # Back to the old key alone: the new key's token is no longer accepted.
    tokens.use_keys(KeySet(old))
    assert jwt.get_unverified_header(tokens.issue(SUB, sid))["kid"] == old.kid
    with pytest.raises(TokenInvalid):
        tokens.verify(after)


def test_a_verify_only_key_does_not_sign(signing_keys: dict[str, SigningKey]) -> None:
    key = signing_keys["EdDSA"]
    public = SigningKey(key.kid, key.algorithm, key.verifier)
    with pytest.raises(ValueError, match="only verifies"):
        public.sign(b"header.payload")


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[float]:
    now = 1_900_000_000.75
    monkeypatch.setattr(time, "time", lambda: now)
    yield now


def test_times_without_now_come_from_the_clock(
    settings: Settings, signing_keys: dict[str, SigningKey], frozen_clock: float
) -> None:
    token = tokens_for(settings, signing_keys["HS256"]).issue(SUB, sid_of(settings))
    claims = jwt.decode(token, options={"verify_signature": False})
    lifetime = timedelta(seconds=claims["exp"] - claims["iat"])
    assert claims["iat"] == int(frozen_clock)
    assert lifetime == settings.access_expires
