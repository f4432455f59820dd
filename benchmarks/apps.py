"""The benchmark app: one Flask app, one shape, every variant a route.

The same app serves the in-process measurements (direct WSGI calls) and the
gunicorn ones (``gunicorn 'benchmarks.apps:create_app()'``, configured by
``BENCH_*`` environment variables), so that every variant pays the same
routing, the same extensions and the same response body:

==========================  ================================================
``GET /bench/bare``          no authentication: the floor
``GET /bench/ours``          ``@login_required`` (flask_tokenauth)
``GET /bench/pyjwt``         a minimal decorator around one ``jwt.decode``
``GET /bench/fjwt``          Flask-JWT-Extended ``@jwt_required()``
``POST /api/auth/...``       flask_tokenauth's blueprint (refresh, login...)
``POST /bench/tutorial/refresh``  the tutorial's rotation: SELECT, then
                             UPDATE, then INSERT, each on its own (autocommit,
                             as node-postgres's ``pool.query`` does), same
                             tables, same token hash
``POST /bench/fjwt/refresh`` Flask-JWT-Extended ``@jwt_required(refresh=True)``
                             issuing a new access token (no database)
==========================  ================================================

Every protected view returns the bare view's body; none touches the user.
Rate limits are off (the benchmarks measure throughput, not the limiter),
and the refresh cookie is not ``Secure`` (plain http on loopback).
"""

from __future__ import annotations

import os
import secrets
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from functools import wraps
from typing import Any

import jwt
from flask import Flask, g, jsonify, request
from flask_jwt_extended import (
    JWTManager,
    create_access_token,
    get_jwt_identity,
    jwt_required,
)

from flask_tokenauth import TokenAuth, auth_bp, login_required
from flask_tokenauth._state import get_state

ACCESS_SECRET = "bench-access-secret-" + "a" * 44
REFRESH_SECRET = "bench-refresh-secret-" + "b" * 44
ISSUER = "flask-tokenauth"
AUDIENCE = "flask-tokenauth-client"
ALGORITHM = "HS256"
#: The claims flask_tokenauth issues and requires; the minimal decorator
#: requires the same ones.
REQUIRED_CLAIMS = ["sub", "iat", "exp", "iss", "aud", "jti", "sid"]
ACCESS_LIFETIME = timedelta(minutes=15)
COOKIE = "refresh_token"
BODY = {"ok": True}


def options_from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    environ = os.environ if environ is None else environ
    return {
        "database_url": environ.get("BENCH_DATABASE_URL"),
        "revocation": environ.get("BENCH_REVOCATION", "off"),
        "redis_url": environ.get("BENCH_REDIS_URL"),
        "redis_prefix": environ.get("BENCH_REDIS_PREFIX", "tokenauth-bench:"),
        "bcrypt_rounds": int(environ.get("BENCH_BCRYPT_ROUNDS", "4")),
    }


def pyjwt_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """The minimal decorator: one ``jwt.decode`` with the same checks as ours
    (pinned algorithm, ``iss``, ``aud``, ``exp`` and the same required
    claims), nothing else."""

    @wraps(view)
    def decorated(*args: Any, **kwargs: Any) -> Any:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return jsonify(error="Access token required", code="TOKEN_MISSING"), 401
        try:
            g.claims = jwt.decode(
                token,
                ACCESS_SECRET,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                audience=AUDIENCE,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            return jsonify(error="Token expired", code="TOKEN_EXPIRED"), 401
        except jwt.PyJWTError:
            return jsonify(error="Invalid token", code="TOKEN_INVALID"), 401
        return view(*args, **kwargs)

    return decorated


class TutorialStore:
    """One autocommit psycopg2 connection per thread: each statement is its
    own transaction, as with node-postgres's ``pool.query``."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._local = threading.local()

    def cursor(self) -> Any:
        import psycopg2

        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = psycopg2.connect(self._dsn)
            conn.autocommit = True
            self._local.conn = conn
        return conn.cursor()


def libpq_dsn(database_url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as a libpq URI (for psycopg2.connect)."""
    from sqlalchemy import make_url

    url = make_url(database_url)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _tutorial_error(message: str, code: str) -> Any:
    response = jsonify(error=message, code=code)
    response.status_code = 401
    response.delete_cookie(COOKIE, path="/bench/tutorial")
    return response


def create_app(options: Mapping[str, Any] | None = None) -> Flask:
    opts = {**options_from_env(), **(options or {})}
    if not opts["database_url"]:
        raise RuntimeError("BENCH_DATABASE_URL is not set")
    app = Flask("benchmarks")
    app.config.update(
        TOKENAUTH_ACCESS_SECRET=ACCESS_SECRET,
        TOKENAUTH_REFRESH_SECRET=REFRESH_SECRET,
        TOKENAUTH_DATABASE_URL=opts["database_url"],
        TOKENAUTH_REVOCATION=opts["revocation"],
        TOKENAUTH_RATELIMIT_ENABLED=False,
        TOKENAUTH_COOKIE_SECURE=False,
        TOKENAUTH_BCRYPT_ROUNDS=opts["bcrypt_rounds"],
        TOKENAUTH_ACCESS_EXPIRES=ACCESS_LIFETIME,
        # Flask-JWT-Extended, with the same secret, algorithm and claim checks.
        JWT_SECRET_KEY=ACCESS_SECRET,
        JWT_ALGORITHM=ALGORITHM,
        JWT_TOKEN_LOCATION=["headers"],
        JWT_ENCODE_ISSUER=ISSUER,
        JWT_DECODE_ISSUER=ISSUER,
        JWT_ENCODE_AUDIENCE=AUDIENCE,
        JWT_DECODE_AUDIENCE=AUDIENCE,
        JWT_ACCESS_TOKEN_EXPIRES=ACCESS_LIFETIME,
        JWT_REFRESH_TOKEN_EXPIRES=timedelta(days=7),
    )
    if opts.get("signing_key") is not None:
        # Part 6: an asymmetric key object signs; the secret only verifies.
        app.config["TOKENAUTH_SIGNING_KEY"] = opts["signing_key"]
    if opts["revocation"] == "redis":
        app.config["TOKENAUTH_REDIS_URL"] = opts["redis_url"]
        app.config["TOKENAUTH_REDIS_PREFIX"] = opts["redis_prefix"]
    TokenAuth().init_app(app)
    app.register_blueprint(auth_bp)
    JWTManager(app)

    @app.get("/bench/bare")
    def bare() -> Any:
        return BODY

    @app.get("/bench/ours")
    @login_required
    def ours() -> Any:
        return BODY

    @app.get("/bench/pyjwt")
    @pyjwt_required
    def minimal() -> Any:
        return BODY

    @app.get("/bench/fjwt")
    @jwt_required()
    def fjwt() -> Any:
        return BODY

    @app.post("/bench/fjwt/refresh")
    @jwt_required(refresh=True)
    def fjwt_refresh() -> Any:
        return {"accessToken": create_access_token(identity=get_jwt_identity())}

    store = (
        TutorialStore(libpq_dsn(opts["database_url"]))
        if opts["database_url"].startswith("postgres")
        else None
    )

    @app.post("/bench/tutorial/refresh")
    def tutorial_refresh() -> Any:
        """The tutorial's strategy: look the token up, then mark it used,
        then insert its successor; three statements, no transaction."""
        if store is None:
            return {"error": "PostgreSQL only"}, 500
        token = request.cookies.get(COOKIE)
        if not token:
            return _tutorial_error("Refresh token required", "REFRESH_TOKEN_MISSING")
        state = get_state()
        token_hash = state.refresh_tokens.hash(token)
        now = datetime.now(timezone.utc)
        with store.cursor() as cur:
            cur.execute(
                "SELECT id, user_id, family_id, used_at, revoked_at, expires_at,"
                " family_expires_at FROM tokenauth_refresh_tokens"
                " WHERE token_hash = %s",
                (token_hash,),
            )
            row = cur.fetchone()
            if row is None:
                return _tutorial_error("Invalid refresh token", "REFRESH_TOKEN_INVALID")
            token_id, user_id, family_id, used_at, revoked_at, expires, family_end = row
            if used_at is not None or revoked_at is not None:
                # Reuse: revoke the family.
                cur.execute(
                    "UPDATE tokenauth_refresh_tokens SET revoked_at = %s"
                    " WHERE family_id = %s AND revoked_at IS NULL",
                    (now, family_id),
                )
                return _tutorial_error("Refresh token reused", "REFRESH_TOKEN_REUSED")
            if expires <= now:
                return _tutorial_error("Refresh token expired", "REFRESH_TOKEN_EXPIRED")
            cur.execute(
                "UPDATE tokenauth_refresh_tokens SET used_at = %s WHERE id = %s",
                (now, token_id),
            )
            new_token = secrets.token_urlsafe(32)
            cur.execute(
                "INSERT INTO tokenauth_refresh_tokens (user_id, token_hash, family_id,"
                " parent_id, created_at, expires_at, family_expires_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (
                    user_id,
                    state.refresh_tokens.hash(new_token),
                    family_id,
                    token_id,
                    now,
                    family_end,
                    family_end,
                ),
            )
        access = jwt.encode(
            {
                "sub": str(user_id),
                "iat": int(now.timestamp()),
                "exp": int((now + ACCESS_LIFETIME).timestamp()),
                "iss": ISSUER,
                "aud": AUDIENCE,
                "jti": uuid.uuid4().hex,
                "sid": family_id,
            },
            ACCESS_SECRET,
            algorithm=ALGORITHM,
            headers={"typ": "at+jwt"},
        )
        response = jsonify(accessToken=access)
        response.set_cookie(
            COOKIE,
            new_token,
            max_age=int((family_end - now).total_seconds()),
            httponly=True,
            samesite="Strict",
            path="/bench/tutorial",
        )
        return response

    return app
