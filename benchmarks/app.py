"""The benchmark app: one Flask app, every variant a route.

The in-process measurements call it directly (WSGI), gunicorn serves it as
``benchmarks.app:create_app()`` configured by ``BENCH_*`` variables, so each
variant pays the same routing, extensions and response body.  It uses only
flask_tokenauth's public configuration and endpoints, so one copy of this
file measures any revision of the library (``--rev``).

=============================  ============================================
``GET /bench/bare``             no authentication: the floor
``GET /bench/ours``             ``@login_required``
``GET /bench/pyjwt``            a minimal decorator: one ``jwt.decode``
``GET /bench/fjwt``             Flask-JWT-Extended ``@jwt_required()``
``POST /api/auth/...``          flask_tokenauth's blueprint (login, refresh)
``POST /bench/fjwt/refresh``    Flask-JWT-Extended's refresh: a new access
                                token, no database
``POST /bench/tutorial/refresh``  the tutorial's rotation on a table of its
                                own: SELECT, UPDATE, INSERT, autocommit each
=============================  ============================================

Configurations (``CONFIGS``, see README.md): the zero-configuration default
on SQLite and on PostgreSQL, Redis, ``off``.  Rate limits are off (they would
refuse the load), the cookie is not ``Secure`` (plain http on loopback).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
from datetime import datetime, timedelta, timezone
from functools import wraps
from typing import Any

import jwt
from flask import Flask, g, jsonify, request
from flask_jwt_extended import JWTManager, create_access_token, jwt_required

from flask_tokenauth import TokenAuth, auth_bp, login_required

CONFIGS = ("default-sqlite", "default-pg", "redis", "off")
ACCESS_SECRET = "bench-access-secret-" + "a" * 44
ISSUER, AUDIENCE = "flask-tokenauth", "flask-tokenauth-client"
#: The claims flask_tokenauth requires; the minimal decorator requires them too.
REQUIRED = ["sub", "iat", "exp", "iss", "aud", "jti", "sid"]
CHECKS: dict[str, Any] = {"issuer": ISSUER, "audience": AUDIENCE}
CHECKS["options"] = {"require": REQUIRED}
BODY = {"ok": True}
TUTORIAL_TABLE = """CREATE TABLE IF NOT EXISTS bench_tutorial_tokens (
    id SERIAL PRIMARY KEY, token_hash TEXT UNIQUE NOT NULL, family TEXT NOT NULL,
    used_at TIMESTAMPTZ, revoked_at TIMESTAMPTZ, expires_at TIMESTAMPTZ NOT NULL)"""
INSERT = "INSERT INTO bench_tutorial_tokens (token_hash, family, expires_at)"


def settings(config: str, env: dict[str, str]) -> dict[str, Any]:
    """The ``TOKENAUTH_*`` keys of a configuration; ``env`` holds the
    ``BENCH_*`` URLs (the database of each tree, its Redis prefix)."""
    if config not in CONFIGS:
        raise ValueError(f"unknown configuration {config!r}: one of {CONFIGS}")
    db = env["BENCH_SQLITE"] if config == "default-sqlite" else env["BENCH_PG"]
    keys: dict[str, Any] = {"TOKENAUTH_DATABASE_URL": db}
    if config == "redis":
        keys.update(
            TOKENAUTH_REVOCATION="redis",
            TOKENAUTH_REDIS_URL=env["BENCH_REDIS"],
            TOKENAUTH_REDIS_PREFIX=env["BENCH_PREFIX"],
        )
    elif config == "off":
        keys["TOKENAUTH_REVOCATION"] = "off"
    return keys


def pyjwt_required(view: Any) -> Any:
    """One ``jwt.decode`` with our checks (algorithm, iss, aud, exp, the
    same required claims), nothing else."""

    @wraps(view)
    def decorated(*args: Any, **kwargs: Any) -> Any:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        try:
            g.claims = jwt.decode(token, ACCESS_SECRET, ["HS256"], **CHECKS)
        except jwt.PyJWTError:
            return {"error": "Invalid token", "code": "TOKEN_INVALID"}, 401
        return view(*args, **kwargs)

    return decorated


def _second_factor_required() -> Any:
    """``@login_required(aal=2)``; plain ``@login_required`` in a revision
    before the second factor, so the row compares the strictest check
    each revision can ask."""
    try:
        return login_required(aal=2)  # type: ignore[call-arg,unused-ignore]
    except TypeError:
        return login_required


def create_app(
    config: str | None = None, env: dict[str, str] | None = None, **extra: Any
) -> Flask:
    env = dict(os.environ if env is None else env)
    app = Flask("benchmarks")
    app.config.update(
        TOKENAUTH_ACCESS_SECRET=ACCESS_SECRET,
        TOKENAUTH_REFRESH_SECRET="bench-refresh-secret-" + "b" * 44,
        TOKENAUTH_RATELIMIT_ENABLED=False,
        TOKENAUTH_COOKIE_SECURE=False,
        JWT_SECRET_KEY=ACCESS_SECRET,
        JWT_TOKEN_LOCATION=["headers"],
        JWT_ENCODE_ISSUER=ISSUER,
        JWT_DECODE_ISSUER=ISSUER,
        JWT_ENCODE_AUDIENCE=AUDIENCE,
        JWT_DECODE_AUDIENCE=AUDIENCE,
        JWT_ACCESS_TOKEN_EXPIRES=timedelta(minutes=15),
    )
    app.config.update(settings(config or env["BENCH_CONFIG"], env), **extra)
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

    @app.get("/bench/aal2")
    @_second_factor_required()
    def aal2() -> Any:
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
        return {"accessToken": create_access_token(identity="1")}

    tutorial = Tutorial(env.get("BENCH_PG", ""))
    app.post("/bench/tutorial/refresh")(tutorial.refresh)
    return app


class Tutorial:
    """The tutorial's strategy: look the token up, mark it used, insert its
    successor; three statements, each its own transaction (as with
    node-postgres's ``pool.query``), one psycopg2 connection per thread."""

    def __init__(self, url: str) -> None:
        self.dsn = url.replace("postgresql+psycopg2://", "postgresql://")
        self.local = threading.local()

    def cursor(self) -> Any:
        import psycopg2

        if getattr(self.local, "conn", None) is None:
            self.local.conn = psycopg2.connect(self.dsn)
            self.local.conn.autocommit = True
        return self.local.conn.cursor()

    def issue(self, count: int) -> list[str]:
        """``count`` first tokens of new families."""
        tokens = [secrets.token_urlsafe(32) for _ in range(count)]
        end = datetime.now(timezone.utc) + timedelta(days=7)
        with self.cursor() as cur:
            cur.execute(TUTORIAL_TABLE)
            for token in tokens:
                family = secrets.token_hex(8)
                cur.execute(
                    f"{INSERT} VALUES (%s, %s, %s)", (sha256(token), family, end)
                )
        return tokens

    def refresh(self) -> Any:
        token = request.cookies.get("refresh_token", "")
        now = datetime.now(timezone.utc)
        with self.cursor() as cur:
            cur.execute(
                "SELECT id, family, used_at, revoked_at, expires_at"
                " FROM bench_tutorial_tokens WHERE token_hash = %s",
                (sha256(token),),
            )
            row = cur.fetchone()
            if row is None or row[4] <= now:
                return {"error": "Invalid refresh token", "code": "INVALID"}, 401
            if row[2] is not None or row[3] is not None:  # reuse: end the family
                cur.execute(
                    "UPDATE bench_tutorial_tokens SET revoked_at = %s"
                    " WHERE family = %s",
                    (now, row[1]),
                )
                return {"error": "Refresh token reused", "code": "REUSED"}, 401
            cur.execute(
                "UPDATE bench_tutorial_tokens SET used_at = %s WHERE id = %s",
                (now, row[0]),
            )
            new = secrets.token_urlsafe(32)
            cur.execute(f"{INSERT} VALUES (%s, %s, %s)", (sha256(new), row[1], row[4]))
        claims = {"sub": "1", "iat": now, "exp": now + timedelta(minutes=15)}
        claims.update(iss=ISSUER, aud=AUDIENCE, jti=new[:22], sid=row[1])
        response = jsonify(accessToken=jwt.encode(claims, ACCESS_SECRET))
        response.set_cookie("refresh_token", new, httponly=True, samesite="Strict")
        return response


def sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
