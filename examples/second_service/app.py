"""A second service that trusts the main app's access tokens, holding no
secret: only the URL of the main app's JWKS.

Run it beside the example app (which must sign with an asymmetric key, see
docs/signing-keys.md)::

    JWKS_URL=http://127.0.0.1:5000/api/auth/.well-known/jwks.json \\
        flask --app examples/second_service/app.py run --port 5001
    curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:5001/api/whoami

Environment: ``JWKS_URL`` (required), ``TOKEN_ISSUER`` (default
``flask-tokenauth``), ``TOKEN_AUDIENCE`` (``flask-tokenauth-client``),
``TOKEN_ALGORITHMS`` (comma-separated, ``EdDSA``), ``JWKS_CACHE_SECONDS``
(how long the fetched key set is trusted, ``300``; keep it at most the main
app's ``TOKENAUTH_JWKS_MAX_AGE``) and ``JWKS_REFETCH_COOLDOWN`` (seconds
between two refetches caused by an unknown ``kid``, ``30``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import jwt
from flask import Flask, request

#: Never HMAC: this service holds no secret, and an HS* entry here would let
#: anyone who read the JWKS forge tokens (algorithm confusion).
ASYMMETRIC = {"EdDSA", "ES256", "ES384", "RS256", "RS384", "RS512", "PS256"}


def create_app(env: Mapping[str, str] | None = None) -> Flask:
    env = os.environ if env is None else env
    if not env.get("JWKS_URL"):
        raise RuntimeError("Set JWKS_URL to the main app's JWKS URL.")
    algorithms = [a.strip() for a in env.get("TOKEN_ALGORITHMS", "EdDSA").split(",")]
    if not algorithms or not set(algorithms) <= ASYMMETRIC:
        raise RuntimeError(f"TOKEN_ALGORITHMS must be among {sorted(ASYMMETRIC)}.")
    issuer = env.get("TOKEN_ISSUER", "flask-tokenauth")
    audience = env.get("TOKEN_AUDIENCE", "flask-tokenauth-client")
    jwks = jwt.PyJWKClient(
        env["JWKS_URL"],
        lifespan=float(env.get("JWKS_CACHE_SECONDS", "300")),
        # An unknown kid refetches the set (a rotation), at most this often:
        # forged tokens with random kids cannot flood the main app.
        cooldown_duration=float(env.get("JWKS_REFETCH_COOLDOWN", "30")),
        timeout=5,
    )

    def unauthorized(
        message: str, code: str = "TOKEN_INVALID"
    ) -> tuple[dict[str, str], int, dict[str, str]]:
        body = {"error": message, "code": code}
        return body, 401, {"WWW-Authenticate": 'Bearer error="invalid_token"'}

    def verify(token: str) -> dict[str, Any]:
        """The token's claims, or :class:`jwt.PyJWTError`. The ``kid`` of the
        unverified header only picks the key; the algorithm is the pinned
        list's and must also be the published key's."""
        if jwt.get_unverified_header(token).get("typ") != "at+jwt":
            raise jwt.InvalidTokenError("not an access token")
        key = jwks.get_signing_key_from_jwt(token)
        if key.algorithm_name not in algorithms:
            raise jwt.InvalidAlgorithmError("key algorithm not allowed")
        return jwt.decode(
            token,
            key.key,
            algorithms=[key.algorithm_name],
            issuer=issuer,
            audience=audience,
            options={"require": ["exp", "iat", "sub", "iss", "aud"]},
        )

    app = Flask(__name__)

    @app.get("/api/health")
    def health() -> Any:
        return {"status": "ok"}

    @app.get("/api/whoami")
    def whoami() -> Any:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return unauthorized("Missing bearer token.")
        try:
            claims = verify(token.strip())
        except jwt.PyJWKClientConnectionError:
            body = {"error": "Key set unavailable.", "code": "SERVICE_UNAVAILABLE"}
            return body, 503
        except jwt.ExpiredSignatureError:
            return unauthorized("Token expired.", "TOKEN_EXPIRED")
        except jwt.PyJWTError:  # bad signature, expired, unknown kid, ...
            return unauthorized("Invalid token.")
        return {"sub": claims["sub"]}

    return app
