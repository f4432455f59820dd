"""Signing keys: EdDSA, ES256 and RS256 besides HMAC, key ids, a key set
with previous and announced keys, the JWKS endpoint, and the forged tokens
that aim at them (``kid`` injection, ``jku``/``x5u``/``jwk`` headers,
algorithm confusion, retired keys)."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from flask import Flask
from flask.testing import FlaskClient

from flask_tokenauth import ConfigurationError, auth_bp, login_required
from flask_tokenauth._config import Settings
from flask_tokenauth._engine import make_engine
from flask_tokenauth._keys import PRIVATE_JWK_MEMBERS, KeySet, SigningKey
from flask_tokenauth._migrate import upgrade

from .conftest import (
    ACCESS_SECRET,
    PASSWORD,
    REFRESH_SECRET,
    Auth,
    base_config,
    bearer,
)
from .servers import (
    START_TIMEOUT,
    Server,
    gunicorn_options,
    gunicorn_path,
    server_environment,
    start_server,
    stop_server,
    wait_until_ready,
)

ASYMMETRIC = ("EdDSA", "ES256", "RS256")
JWKS = "/api/auth/.well-known/jwks.json"

PrivateKey = Any


def new_key(algorithm: str) -> PrivateKey:
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def keys() -> dict[str, list[PrivateKey]]:
    """Two keys per algorithm (RSA generation is slow: once per module)."""
    return {alg: [new_key(alg), new_key(alg)] for alg in ASYMMETRIC}


def pem(key: Any, password: bytes | None = None) -> str:
    if hasattr(key, "private_bytes"):
        encryption: Any = (
            serialization.BestAvailableEncryption(password)
            if password
            else serialization.NoEncryption()
        )
        data = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )
    else:
        data = key.public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo,
        )
    return str(data.decode())


def public_pem(key: Any) -> str:
    return pem(key.public_key())


def jwk_of(key: Any, algorithm: str, **extra: Any) -> dict[str, Any]:
    jwk = json.loads(jwt.get_algorithm_by_name(algorithm).to_jwk(key))
    return {**jwk, **extra}


def unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return jwt.get_unverified_header(token), jwt.decode(
        token, options={"verify_signature": False}
    )


@pytest.fixture
def keyed_app(make_app: Any) -> Callable[..., Flask]:
    """``keyed_app(**config)``: an app with a protected ``/api/profile``,
    without the HMAC access secret unless given."""

    def factory(**config: Any) -> Flask:
        config.setdefault("TOKENAUTH_ACCESS_SECRET", None)
        app: Flask = make_app(**config)

        @app.get("/api/profile")
        @login_required
        def profile() -> Any:
            return {"ok": True}

        return app

    return factory


def login(app: Flask, email: str = "user@example.com") -> str:
    auth = Auth(app.test_client())
    response = auth.register(email=email)
    if response.status_code == 409:
        response = auth.login(email=email)
    assert response.status_code in (200, 201), response.get_json()
    return str(response.get_json()["accessToken"])


def status(app: Flask, token: str) -> tuple[int, str | None]:
    response = app.test_client().get("/api/profile", headers=bearer(token))
    body = response.get_json()
    return response.status_code, (body or {}).get("code")


# --- algorithms and key sources -------------------------------------------


@pytest.mark.parametrize("algorithm", ASYMMETRIC)
def test_asymmetric_tokens_carry_kid_and_verify(
    keyed_app: Any, keys: Any, algorithm: str
) -> None:
    key = keys[algorithm][0]
    app = keyed_app(TOKENAUTH_SIGNING_KEY=pem(key))
    token = login(app)
    header, _ = unverified(token)
    signing = app.extensions["tokenauth"].access_tokens.keys.signing
    assert header == {"alg": algorithm, "typ": "at+jwt", "kid": signing.kid}
    assert status(app, token) == (200, None)
    # The public key alone verifies it, as another service would.
    jwt.decode(
        token,
        key.public_key(),
        algorithms=[algorithm],
        audience="flask-tokenauth-client",
    )


@pytest.mark.parametrize("algorithm", ["HS256", "HS384", "HS512"])
def test_hmac_tokens_carry_a_kid_derived_from_the_secret(
    keyed_app: Any, algorithm: str
) -> None:
    secret = "s" * 64
    app = keyed_app(TOKENAUTH_ACCESS_SECRET=secret, TOKENAUTH_ALGORITHM=algorithm)
    token = login(app)
    header, _ = unverified(token)
    assert header["alg"] == algorithm
    kid = header["kid"]
    assert kid.startswith("hs-") and len(kid) == 19
    assert "s" * 8 not in kid
    # Stable across apps (workers) with the same secret; another secret or
    # algorithm, another kid.
    same = SigningKey.hmac(secret.encode(), algorithm, "k").kid
    assert same == kid
    assert SigningKey.hmac(b"t" * 64, algorithm, "k").kid != kid
    other = "HS512" if algorithm != "HS512" else "HS256"
    assert SigningKey.hmac(secret.encode(), other, "k").kid != kid
    assert status(app, token) == (200, None)


def test_key_sources(keys: Any, tmp_path: Path) -> None:
    """A path to a PEM or JWK file, PEM or JWK text, a JWK dict, a key
    object, an encrypted PEM with its password: all the same key."""
    key = keys["EdDSA"][0]
    (tmp_path / "key.pem").write_text(pem(key))
    (tmp_path / "key.jwk").write_text(json.dumps(jwk_of(key, "EdDSA")))
    (tmp_path / "enc.pem").write_text(pem(key, b"pass phrase"))
    sources: list[tuple[Any, str | None]] = [
        (str(tmp_path / "key.pem"), None),
        (tmp_path / "key.jwk", None),
        (pem(key), None),
        (json.dumps(jwk_of(key, "EdDSA")), None),
        (jwk_of(key, "EdDSA"), None),
        (key, None),
        (str(tmp_path / "enc.pem"), "pass phrase"),
        (pem(key, b"pass phrase"), "pass phrase"),
    ]
    kids = set()
    for source, password in sources:
        settings = Settings.from_mapping(
            base_config(
                TOKENAUTH_ACCESS_SECRET=None,
                TOKENAUTH_SIGNING_KEY=source,
                TOKENAUTH_SIGNING_KEY_PASSWORD=password,
            )
        )
        assert settings.algorithm == "EdDSA"
        assert settings.access_secret is None
        signing = settings.keys.signing
        assert isinstance(signing.signer, ed25519.Ed25519PrivateKey)
        assert len(settings.keys) == 1
        kids.add(signing.kid)
    assert len(kids) == 1  # the RFC 7638 thumbprint, wherever it came from


def test_encrypted_keys_in_both_settings(keys: Any) -> None:
    """The next key, stored encrypted like the current one, is read with the
    same password; an unencrypted one is read without it."""
    settings = Settings.from_mapping(
        base_config(
            TOKENAUTH_ACCESS_SECRET=None,
            TOKENAUTH_SIGNING_KEY=pem(keys["EdDSA"][0], b"pw"),
            TOKENAUTH_SIGNING_KEY_PASSWORD="pw",
            TOKENAUTH_VERIFY_KEYS=pem(keys["EdDSA"][1], b"pw") + pem(keys["ES256"][0]),
        )
    )
    assert [k.algorithm for k in settings.keys] == ["EdDSA", "EdDSA", "ES256"]


def test_a_jwk_keeps_its_kid(keys: Any) -> None:
    jwk = jwk_of(keys["ES256"][0], "ES256", kid="2026-11-key", alg="ES256")
    settings = Settings.from_mapping(
        base_config(TOKENAUTH_ACCESS_SECRET=None, TOKENAUTH_SIGNING_KEY=jwk)
    )
    assert (settings.keys.signing.kid, settings.algorithm) == ("2026-11-key", "ES256")


def weak_rsa() -> Any:
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (lambda k: {"TOKENAUTH_SIGNING_KEY": pem(weak_rsa())}, "1024-bit RSA"),
        (
            lambda k: {"TOKENAUTH_SIGNING_KEY": public_pem(k["EdDSA"][0])},
            "TOKENAUTH_SIGNING_KEY is a public key",
        ),
        (
            lambda k: {
                "TOKENAUTH_SIGNING_KEY": jwk_of(k["RS256"][0].public_key(), "RS256")
            },
            "TOKENAUTH_SIGNING_KEY is a public key",
        ),
        (
            lambda k: {
                "TOKENAUTH_SIGNING_KEY": pem(k["EdDSA"][0]),
                "TOKENAUTH_ALGORITHM": "ES256",
            },
            "key for EdDSA, not ES256.*TOKENAUTH_ALGORITHM=EdDSA",
        ),
        (
            lambda k: {
                "TOKENAUTH_SIGNING_KEY": pem(k["RS256"][0]),
                "TOKENAUTH_ALGORITHM": "HS256",
            },
            "TOKENAUTH_ALGORITHM=HS256 is an HMAC algorithm",
        ),
        (
            lambda k: {
                "TOKENAUTH_SIGNING_KEY": pem(ec.generate_private_key(ec.SECP384R1()))
            },
            "secp384r1; ES256 needs P-256",
        ),
        (
            lambda k: {
                "TOKENAUTH_SIGNING_KEY": jwk_of(k["ES256"][0], "ES256", alg="RS256"),
            },
            "TOKENAUTH_SIGNING_KEY is a key for ES256, not RS256",
        ),
        (
            lambda k: {"TOKENAUTH_ALGORITHM": "RS256"},
            "TOKENAUTH_ALGORITHM=RS256 signs with a private key: set"
            " TOKENAUTH_SIGNING_KEY",
        ),
        (
            lambda k: {"TOKENAUTH_SIGNING_KEY": "/nonexistent/key.pem"},
            "TOKENAUTH_SIGNING_KEY: cannot read the key file",
        ),
        (
            lambda k: {"TOKENAUTH_SIGNING_KEY": pem(k["EdDSA"][0], b"secret")},
            "set TOKENAUTH_SIGNING_KEY_PASSWORD",
        ),
        (
            lambda k: {
                "TOKENAUTH_SIGNING_KEY": pem(k["EdDSA"][0], b"secret"),
                "TOKENAUTH_SIGNING_KEY_PASSWORD": "wrong",
            },
            "wrong TOKENAUTH_SIGNING_KEY_PASSWORD",
        ),
        (
            lambda k: {"TOKENAUTH_SIGNING_KEY": "-----BEGIN CERTIFICATE-----\nx"},
            "neither a PEM key",
        ),
        (
            lambda k: {
                "TOKENAUTH_SIGNING_KEY": pem(k["EdDSA"][0]),
                "TOKENAUTH_VERIFY_KEYS": [public_pem(k["EdDSA"][0])],
            },
            "Two keys have the kid",
        ),
        (
            lambda k: {
                "TOKENAUTH_SIGNING_KEY": pem(k["EdDSA"][0]),
                "TOKENAUTH_VERIFY_KEYS": [pem(weak_rsa())],
            },
            r"TOKENAUTH_VERIFY_KEYS\[0\] is a 1024-bit RSA key",
        ),
        (
            lambda k: {
                "TOKENAUTH_SIGNING_KEY": pem(k["EdDSA"][0]),
                "TOKENAUTH_VERIFY_KEYS": [{"kty": "oct", "k": "c2hvcnQ"}],
            },
            r"TOKENAUTH_VERIFY_KEYS\[0\] is an HMAC secret.*'alg'",
        ),
        (
            lambda k: {
                "TOKENAUTH_SIGNING_KEY": pem(k["EdDSA"][0]),
                "TOKENAUTH_VERIFY_KEYS": [
                    {"kty": "oct", "k": "c2hvcnQ", "alg": "HS256"}
                ],
            },
            "at least 32 bytes",
        ),
        (lambda k: {"TOKENAUTH_JWKS_MAX_AGE": "15m"}, "TOKENAUTH_JWKS_MAX_AGE"),
        (lambda k: {"TOKENAUTH_JWKS_PATH": "jwks.json"}, "TOKENAUTH_JWKS_PATH"),
    ],
)
@pytest.mark.requirement("RFC-8725-3.1", "RFC-8725-3.5")
def test_weak_or_mismatched_keys_stop_start_up(
    keys: Any, config: Callable[[Any], dict[str, Any]], message: str
) -> None:
    app = Flask(__name__)
    app.config.update(base_config(TOKENAUTH_ACCESS_SECRET=None, **config(keys)))
    if "TOKENAUTH_SIGNING_KEY" not in app.config:
        app.config["TOKENAUTH_ACCESS_SECRET"] = ACCESS_SECRET
    with pytest.raises(ConfigurationError, match=message):
        app.register_blueprint(auth_bp)
    assert "tokenauth" not in app.extensions


@pytest.mark.parametrize(
    "secret",
    [
        '{"kty": "oct", "k": "' + "a" * 48 + '"}',
        "-----BEGIN PUBLIC KEY-----\n" + "A" * 64 + "\n-----END PUBLIC KEY-----",
    ],
    ids=["a JWK", "a PEM"],
)
def test_an_hmac_secret_pyjwt_refuses_stops_start_up(secret: str) -> None:
    """The key is prepared for PyJWT once, at start-up: a secret it would
    refuse at every token fails there, naming the setting (not as a 500 at
    the first login)."""
    app = Flask(__name__)
    app.config.update(base_config(TOKENAUTH_ACCESS_SECRET=secret))
    with pytest.raises(
        ConfigurationError, match="TOKENAUTH_ACCESS_SECRET: PyJWT refuses"
    ):
        app.register_blueprint(auth_bp)


# --- the key set: previous and announced keys ------------------------------


@pytest.mark.parametrize("algorithm", ASYMMETRIC)
def test_rotation_overlap(keyed_app: Any, keys: Any, algorithm: str) -> None:
    """publish next -> sign with next -> retire previous, one app per step."""
    old, new = keys[algorithm]
    before = keyed_app(TOKENAUTH_SIGNING_KEY=pem(old))
    published = keyed_app(
        TOKENAUTH_SIGNING_KEY=pem(old), TOKENAUTH_VERIFY_KEYS=public_pem(new)
    )
    switched = keyed_app(
        TOKENAUTH_SIGNING_KEY=pem(new), TOKENAUTH_VERIFY_KEYS=[public_pem(old)]
    )
    retired = keyed_app(TOKENAUTH_SIGNING_KEY=pem(new))
    old_token = login(before)
    new_token = login(switched, "other@example.com")
    # A worker still on the old key accepts a token of one already switched
    # (the key was announced first), and the other way round.
    assert status(published, new_token) == (200, None)
    assert status(switched, old_token) == (200, None)
    # Both keys are published while they overlap.
    published_kids = {
        k["kid"] for k in published.test_client().get(JWKS).get_json()["keys"]
    }
    assert unverified(new_token)[0]["kid"] in published_kids
    assert unverified(old_token)[0]["kid"] in published_kids
    # Retired: the old key's tokens are refused.
    assert status(retired, old_token) == (401, "TOKEN_INVALID")
    assert status(retired, new_token) == (200, None)


def test_moving_from_hmac_keeps_hmac_tokens_until_the_secret_is_removed(
    keyed_app: Any, keys: Any
) -> None:
    hmac_app = keyed_app(TOKENAUTH_ACCESS_SECRET=ACCESS_SECRET)
    token = login(hmac_app)
    moving = keyed_app(
        TOKENAUTH_SIGNING_KEY=pem(keys["EdDSA"][0]),
        TOKENAUTH_ACCESS_SECRET=ACCESS_SECRET,
    )
    assert unverified(login(moving))[0]["alg"] == "EdDSA"
    assert status(moving, token) == (200, None)
    # The HMAC secret is never published.
    assert [k["alg"] for k in moving.test_client().get(JWKS).get_json()["keys"]] == [
        "EdDSA"
    ]
    moved = keyed_app(TOKENAUTH_SIGNING_KEY=pem(keys["EdDSA"][0]))
    assert status(moved, token) == (401, "TOKEN_INVALID")


def test_previous_hmac_secret_as_an_oct_jwk(keyed_app: Any) -> None:
    old_app = keyed_app(TOKENAUTH_ACCESS_SECRET="o" * 40)
    token = login(old_app)
    k = base64.urlsafe_b64encode(b"o" * 40).rstrip(b"=").decode()
    new_app = keyed_app(
        TOKENAUTH_ACCESS_SECRET="n" * 40,
        TOKENAUTH_VERIFY_KEYS=json.dumps(
            {"keys": [{"kty": "oct", "k": k, "alg": "HS256"}]}
        ),
    )
    assert status(new_app, token) == (200, None)
    assert new_app.test_client().get(JWKS).get_json() == {"keys": []}


def test_use_keys_swaps_the_set_and_empties_the_cache(
    keyed_app: Any, keys: Any
) -> None:
    app = keyed_app(TOKENAUTH_SIGNING_KEY=pem(keys["EdDSA"][0]))
    token = login(app)
    assert status(app, token) == (200, None)  # now cached
    access = app.extensions["tokenauth"].access_tokens
    new_signing = SigningKey.load(pem(keys["EdDSA"][1]), "test", private=True)
    access.use_keys(KeySet(new_signing))
    assert status(app, token) == (401, "TOKEN_INVALID")
    assert unverified(login(app))[0]["kid"] == new_signing.kid
    etag = app.test_client().get(JWKS).headers["ETag"]
    assert new_signing.kid in app.test_client().get(JWKS).get_data(as_text=True)
    assert etag  # the document (and its ETag) follow the set


# --- the JWKS endpoint -----------------------------------------------------


def test_jwks_publishes_public_keys_only(keyed_app: Any, keys: Any) -> None:
    """Every kind of key, private ones given to both settings: only the
    public members appear, and never an HMAC secret."""
    app = keyed_app(
        TOKENAUTH_SIGNING_KEY=pem(keys["RS256"][0]),
        TOKENAUTH_ACCESS_SECRET=ACCESS_SECRET,
        TOKENAUTH_VERIFY_KEYS=[
            pem(keys["EdDSA"][0]),
            jwk_of(keys["ES256"][0], "ES256"),  # a private JWK, with "d"
            jwk_of(keys["RS256"][1], "RS256"),
            {"kty": "oct", "k": "a" * 96, "alg": "HS512", "kid": "old-hmac"},
        ],
    )
    response = app.test_client().get(JWKS)
    assert response.status_code == 200
    assert response.mimetype == "application/jwk-set+json"
    document = response.get_json()
    assert set(document) == {"keys"}
    assert len(document["keys"]) == 4
    for key in document["keys"]:
        assert not PRIVATE_JWK_MEMBERS & set(key), key
        assert key["use"] == "sig" and key["kid"]
    assert sorted(k["alg"] for k in document["keys"]) == [
        "ES256",
        "EdDSA",
        "RS256",
        "RS256",
    ]
    body = response.get_data(as_text=True)
    assert "old-hmac" not in body and "a" * 96 not in body
    # Each published key verifies what its private half signs.
    for key in document["keys"]:
        assert jwt.PyJWK(key).key is not None


def test_jwks_caching(keyed_app: Any, keys: Any) -> None:
    app = keyed_app(TOKENAUTH_SIGNING_KEY=pem(keys["ES256"][0]))
    client = app.test_client()
    response = client.get(JWKS)
    # A third of the 15-minute access-token lifetime: shorter than the
    # overlap of a rotation.
    assert response.headers["Cache-Control"] == "public, max-age=300"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    etag = response.headers["ETag"]
    again = client.get(JWKS, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    assert client.get(JWKS, headers={"If-None-Match": '"other"'}).status_code == 200
    assert client.head(JWKS).status_code == 200
    refused = client.post(JWKS)
    assert refused.status_code == 405
    assert refused.get_json()["code"] == "METHOD_NOT_ALLOWED"


def test_jwks_path_and_max_age_are_configurable(keyed_app: Any, keys: Any) -> None:
    app = keyed_app(
        TOKENAUTH_SIGNING_KEY=pem(keys["EdDSA"][0]),
        TOKENAUTH_JWKS_PATH="/keys",
        TOKENAUTH_JWKS_MAX_AGE="1m",
    )
    client = app.test_client()
    assert client.get(JWKS).status_code == 404
    response = client.get("/api/auth/keys")
    assert response.headers["Cache-Control"] == "public, max-age=60"
    assert len(response.get_json()["keys"]) == 1
    off = keyed_app(TOKENAUTH_SIGNING_KEY=pem(keys["EdDSA"][0]), TOKENAUTH_JWKS_PATH="")
    missing = off.test_client().get(JWKS)
    assert missing.status_code == 404
    assert not missing.is_json  # no rule of ours: the host's 404


def test_hmac_only_app_serves_an_empty_set(client: FlaskClient) -> None:
    response = client.get(JWKS)
    assert response.status_code == 200
    assert response.get_json() == {"keys": []}


# --- the forged-token corpus -----------------------------------------------


def b64(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.fixture
def victim(keyed_app: Any, keys: Any) -> tuple[Flask, str]:
    """An RS256 app (with a previous EdDSA key) and a genuine token."""
    app = keyed_app(
        TOKENAUTH_SIGNING_KEY=pem(keys["RS256"][0]),
        TOKENAUTH_VERIFY_KEYS=[public_pem(keys["EdDSA"][0])],
    )
    token = login(app)
    assert status(app, token) == (200, None)
    return app, token


def forged_tokens(app: Flask, token: str, keys: Any) -> dict[str, str]:
    header, claims = unverified(token)
    kid = header["kid"]
    key_set = app.extensions["tokenauth"].access_tokens.keys
    eddsa_kid = next(k.kid for k in key_set if k.algorithm == "EdDSA")
    attacker = ed25519.Ed25519PrivateKey.generate()
    attacker_rsa = keys["RS256"][1]  # not in the victim's set
    public_rsa_pem = public_pem(keys["RS256"][0])
    public_rsa_jwk = json.dumps(jwk_of(keys["RS256"][0].public_key(), "RS256"))

    def sign(key: Any, algorithm: str, headers: dict[str, Any]) -> str:
        # By hand, so that PyJWT's own checks of what it signs (a string
        # kid) do not stop a forgery that an attacker would send as is.
        signing_input = f"{b64({'alg': algorithm, **headers})}.{b64(claims)}"
        signature = jwt.get_algorithm_by_name(algorithm).sign(
            signing_input.encode(), key
        )
        return f"{signing_input}.{b64(signature)}"

    def raw(header: dict[str, Any], signature: bytes = b"") -> str:
        return f"{b64(header)}.{b64(claims)}.{b64(signature)}"

    def hmac_with(secret: bytes, headers: dict[str, Any]) -> str:
        # PyJWT refuses to use a PEM as an HMAC secret, so sign by hand:
        # exactly what an attacker would do.
        import hashlib
        import hmac

        signing_input = f"{b64(headers)}.{b64(claims)}"
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64(mac)}"

    attacker_jwk = jwk_of(attacker.public_key(), "EdDSA")
    base = {"typ": "at+jwt"}
    cases = {
        f"kid {name}": sign(attacker, "EdDSA", {**base, "kid": value})
        for name, value in {
            "path traversal": "../../etc/passwd",
            "null device": "/dev/null",
            "SQL": "' OR 1=1--",
            "unknown": "no-such-key",
            "empty": "",
            "integer": 1,
            "list": [kid],
            "object": {"kid": kid},
            "null": None,
        }.items()
    }
    cases.update(
        {
            "no kid": sign(attacker, "EdDSA", base),
            "no kid, genuine key": sign(keys["RS256"][0], "RS256", base),
            "jku announcing the attacker's key": sign(
                attacker,
                "EdDSA",
                {**base, "kid": kid, "jku": "https://attacker.example/jwks.json"},
            ),
            "x5u announcing the attacker's key": sign(
                attacker,
                "EdDSA",
                {**base, "kid": kid, "x5u": "https://attacker.example/cert.pem"},
            ),
            "embedded jwk": sign(attacker, "EdDSA", {**base, "jwk": attacker_jwk}),
            "embedded jwk with our kid": sign(
                attacker, "EdDSA", {**base, "kid": kid, "jwk": attacker_jwk}
            ),
            "embedded jwk with the attacker's kid": sign(
                attacker,
                "EdDSA",
                {
                    **base,
                    "kid": attacker_jwk["x"],
                    "jwk": {**attacker_jwk, "kid": attacker_jwk["x"]},
                },
            ),
            "public PEM as HMAC secret": hmac_with(
                public_rsa_pem.encode(), {**base, "alg": "HS256", "kid": kid}
            ),
            "public JWK as HMAC secret": hmac_with(
                public_rsa_jwk.encode(), {**base, "alg": "HS256", "kid": kid}
            ),
            "public PEM as HMAC secret, no kid": hmac_with(
                public_rsa_pem.encode(), {**base, "alg": "HS256"}
            ),
            "alg none": raw({**base, "alg": "none", "kid": kid}),
            "alg None": raw({**base, "alg": "None", "kid": kid}),
            "alg missing": raw({**base, "kid": kid}, b"x" * 256),
            "retired key": sign(attacker_rsa, "RS256", {**base, "kid": kid}),
            "retired key, its own kid": sign(
                attacker_rsa,
                "RS256",
                {**base, "kid": SigningKey.load(attacker_rsa, "k").kid},
            ),
            "alg differs from the key's (RS512)": sign(
                keys["RS256"][0], "RS512", {**base, "kid": kid}
            ),
            "alg differs from the key's (PS256)": sign(
                keys["RS256"][0], "PS256", {**base, "kid": kid}
            ),
            "EdDSA key's kid, RS256 signature": sign(
                keys["RS256"][0], "RS256", {**base, "kid": eddsa_kid}
            ),
            "RS256 key's kid, EdDSA signature by its holder": sign(
                keys["EdDSA"][0], "EdDSA", {**base, "kid": kid}
            ),
            "header not JSON": f"{b64(b'not json')}.{token.split('.', 1)[1]}",
            "header a list": f"{b64(b'[1]')}.{token.split('.', 1)[1]}",
            "header not base64": f"%%%.{token.split('.', 1)[1]}",
        }
    )
    return cases


@pytest.mark.requirement(
    "ASVS-5.0-9.1.1",
    "ASVS-5.0-9.1.2",
    "ASVS-5.0-9.1.3",
    "RFC-8725-3.1",
)
def test_forged_token_corpus(victim: tuple[Flask, str], keys: Any) -> None:
    app, token = victim
    client = app.test_client()
    results = {
        name: client.get("/api/profile", headers=bearer(forged))
        for name, forged in forged_tokens(app, token, keys).items()
    }
    wrong = {
        name: (r.status_code, r.get_data(as_text=True)[:80])
        for name, r in results.items()
        if r.status_code != 401 or r.get_json()["code"] != "TOKEN_INVALID"
    }
    assert wrong == {}
    # The genuine token still passes (the corpus poisoned nothing).
    assert status(app, token) == (200, None)


@pytest.mark.requirement("ASVS-5.0-9.1.3")
def test_unknown_kid_tries_no_other_key(
    victim: tuple[Flask, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused before any signature check: no key is tried."""
    app, token = victim
    calls: list[SigningKey] = []
    verify = SigningKey.verify

    def counting_verify(key: SigningKey, *args: Any) -> bool:
        calls.append(key)
        return verify(key, *args)

    monkeypatch.setattr(SigningKey, "verify", counting_verify)
    claims = unverified(token)[1]
    forged = jwt.encode(
        claims,
        ed25519.Ed25519PrivateKey.generate(),
        algorithm="EdDSA",
        headers={"kid": "x", "typ": "at+jwt"},
    )
    assert status(app, forged) == (401, "TOKEN_INVALID")
    assert calls == []
    # A never-seen genuine token: one key tried, the RSA one.
    assert status(app, login(app)) == (200, None)
    assert len(calls) == 1
    assert isinstance(calls[0].verifier, rsa.RSAPublicKey)


# --- other services verify with the JWKS URL only -------------------------


@pytest.fixture(scope="module")
def example_servers(
    keys: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """The example app in gunicorn, once per algorithm, each configured
    from the environment with the path of its PEM file."""
    gunicorn = gunicorn_path()
    if gunicorn is None:
        pytest.skip("gunicorn is not installed")
    assert gunicorn is not None
    workdir = tmp_path_factory.mktemp("jwks")
    servers: list[Server] = []
    try:
        for algorithm in ASYMMETRIC:
            key_file = workdir / f"{algorithm}.pem"
            key_file.write_text(pem(keys[algorithm][0], b"pw-" + algorithm.encode()))
            url = f"sqlite:///{workdir / algorithm}.sqlite3"
            engine = make_engine(url, {})
            upgrade(engine)
            engine.dispose()
            env = server_environment(
                TOKENAUTH_SIGNING_KEY=str(key_file),
                TOKENAUTH_SIGNING_KEY_PASSWORD=f"pw-{algorithm}",
                TOKENAUTH_REFRESH_SECRET=REFRESH_SECRET,
                TOKENAUTH_DATABASE_URL=url,
                TOKENAUTH_BCRYPT_ROUNDS="4",
                TOKENAUTH_COOKIE_SECURE="false",
            )
            command = [
                gunicorn,
                *gunicorn_options(gunicorn, threads=2),
                "examples.app:create_app()",
            ]
            servers.append(start_server(algorithm, command, env, workdir))
        wait_until_ready(servers, time.monotonic() + START_TIMEOUT)
        yield {s.name: s.url for s in servers}
    finally:
        for server in servers:
            stop_server(server)


@pytest.mark.parametrize("algorithm", ASYMMETRIC)
def test_pyjwkclient_verifies_our_tokens(
    example_servers: dict[str, str], algorithm: str
) -> None:
    url = example_servers[algorithm]
    response = requests.post(
        f"{url}/api/auth/register",
        json={"email": "jwks@example.com", "password": PASSWORD},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    token = response.json()["accessToken"]
    client = jwt.PyJWKClient(f"{url}/api/auth/.well-known/jwks.json")
    signing_key = client.get_signing_key_from_jwt(token)
    claims = jwt.decode(
        token,
        signing_key.key,
        algorithms=[algorithm],
        audience="flask-tokenauth-client",
        issuer="flask-tokenauth",
    )
    assert claims["email"] == "jwks@example.com"
    assert signing_key.algorithm_name == algorithm


# --- flask tokenauth keys generate ----------------------------------------


@pytest.mark.parametrize("output_format", ["pem", "jwk"])
@pytest.mark.parametrize("algorithm", ASYMMETRIC)
def test_keys_generate(
    keyed_app: Any, tmp_path: Path, algorithm: str, output_format: str
) -> None:
    out = tmp_path / f"key.{output_format}"
    runner = keyed_app(TOKENAUTH_ACCESS_SECRET=ACCESS_SECRET).test_cli_runner()
    args = ["tokenauth", "keys", "generate", "--alg", algorithm]
    args += ["--format", output_format, "--out", str(out)]
    result = runner.invoke(args=args)
    assert result.exit_code == 0, result.output
    assert out.stat().st_mode & 0o777 == 0o600
    app = keyed_app(TOKENAUTH_SIGNING_KEY=str(out))
    kid = unverified(login(app))[0]["kid"]
    assert f"Generated an {algorithm} key, kid {kid}." in result.output
    # Never overwrites a key.
    again = runner.invoke(args=args)
    assert again.exit_code == 1 and "not overwriting" in again.output
    assert str(out) in again.output


def test_keys_generate_prints_the_key(keyed_app: Any) -> None:
    runner = keyed_app(TOKENAUTH_ACCESS_SECRET=ACCESS_SECRET).test_cli_runner()
    result = runner.invoke(args=["tokenauth", "keys", "generate"])
    assert result.exit_code == 0
    pem_text = result.output.split("Generated")[0]
    assert pem_text.startswith("-----BEGIN PRIVATE KEY-----")
    key = SigningKey.load(pem_text, "k", private=True)
    assert key.algorithm == "EdDSA"


HMAC_BESIDE = "TOKENAUTH_ACCESS_SECRET is set beside"


@pytest.mark.parametrize("source", ["TOKENAUTH_SIGNING_KEY", "TOKENAUTH_KEYS_DIR"])
def test_an_hmac_secret_beside_asymmetric_keys_is_warned_about_once(
    keyed_app: Any,
    make_app: Any,
    keys: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    source: str,
) -> None:
    """The secret keeps verifying HS256 tokens, with no end date, for as long
    as it is set: start-up says so (once, not per request), and when to
    unset it.  Nothing is said when it is not set, or when it signs."""
    if source == "TOKENAUTH_KEYS_DIR":
        directory = tmp_path / "keys"
        result = (
            make_app()
            .test_cli_runner()
            .invoke(
                args=[
                    "tokenauth",
                    "keys",
                    "rotate",
                    "--publish",
                    "--dir",
                    str(directory),
                ]
            )
        )
        assert result.exit_code == 0, result.output
        config = {source: str(directory)}
    else:
        config = {source: pem(keys["EdDSA"][0])}
    with caplog.at_level(logging.WARNING, logger="flask_tokenauth"):
        app = keyed_app(TOKENAUTH_ACCESS_SECRET=ACCESS_SECRET, **config)
        hmac_token = login(keyed_app(TOKENAUTH_ACCESS_SECRET=ACCESS_SECRET))
        assert status(app, hmac_token) == (200, None)
        assert status(app, hmac_token) == (200, None)
    warnings = [r for r in caplog.records if HMAC_BESIDE in r.getMessage()]
    assert len(warnings) == 1, caplog.text
    message = warnings[0].getMessage()
    assert source in message and "unset TOKENAUTH_ACCESS_SECRET" in message
    assert "0:15:00 after the move" in message
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="flask_tokenauth"):
        keyed_app(**config)
    assert HMAC_BESIDE not in caplog.text
