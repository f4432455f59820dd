"""``@login_required``: what it accepts and what it refuses, always as a 401
JSON error with ``WWW-Authenticate: Bearer``, never a 500."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, event

from flask_tokenauth import current_claims, current_user, login_required

from .conftest import ACCESS_SECRET, REFRESH_SECRET, Auth, bearer


@pytest.fixture
def protected(app: Flask) -> Flask:
    @app.get("/api/profile")
    @login_required
    def profile() -> Any:
        return {"user": {"id": current_user.id, "email": current_user.email}}

    @app.route("/api/preflight", methods=["GET", "OPTIONS"])
    @login_required
    def preflight() -> Any:
        return {"ok": True}

    @app.get("/api/claims")
    @login_required
    def claims() -> Any:
        return {"sub": current_claims["sub"], "sid": current_claims["sid"]}

    @app.get("/api/async")
    @login_required
    async def async_view() -> Any:
        return {"sub": current_claims["sub"]}

    return app


@pytest.fixture
def token(auth: Auth, protected: Flask) -> str:
    return str(auth.register().get_json()["accessToken"])


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def forge(
    claims: dict[str, Any],
    secret: str = ACCESS_SECRET,
    headers: dict[str, Any] | None = None,
    algorithm: str = "HS256",
) -> str:
    return jwt.encode(
        claims,
        secret,
        algorithm=algorithm,
        headers={"typ": "at+jwt", **(headers or {})},
    )


def b64(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def assert_401(response: Any, code: str) -> None:
    assert response.status_code == 401
    assert response.mimetype == "application/json"
    assert response.get_json()["code"] == code
    assert set(response.get_json()) == {"error", "code"}
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="api"')


def test_valid_token_claims(token: str, client: FlaskClient) -> None:
    claims = claims_of(token)
    assert set(claims) >= {"sub", "iat", "exp", "iss", "aud", "jti", "sid"}
    assert isinstance(claims["sub"], str)
    assert claims["exp"] - claims["iat"] == 15 * 60
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "at+jwt"}
    response = client.get("/api/claims", headers=bearer(token))
    assert response.get_json() == {"sub": claims["sub"], "sid": claims["sid"]}


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_scheme_is_case_insensitive(
    token: str, client: FlaskClient, scheme: str
) -> None:
    response = client.get(
        "/api/profile", headers={"Authorization": f"{scheme} {token}"}
    )
    assert response.status_code == 200


@pytest.mark.parametrize("header", [None, "", "Basic dXNlcjpwdw==", "Token abc"])
def test_missing_token(
    protected: Flask, client: FlaskClient, header: str | None
) -> None:
    headers = {} if header is None else {"Authorization": header}
    response = client.get("/api/profile", headers=headers)
    assert_401(response, "TOKEN_MISSING")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'


def test_expired_token_has_the_tutorials_exact_body(
    token: str, client: FlaskClient
) -> None:
    claims = claims_of(token)
    claims.update(iat=int(time.time()) - 100, exp=int(time.time()) - 10)
    response = client.get("/api/profile", headers=bearer(forge(claims)))
    assert_401(response, "TOKEN_EXPIRED")
    assert response.get_json() == {"error": "Token expired", "code": "TOKEN_EXPIRED"}
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def _none_token(claims: dict[str, Any], alg: str) -> str:
    return f"{b64({'alg': alg, 'typ': 'at+jwt'})}.{b64(claims)}."


def mutations(claims: dict[str, Any]) -> dict[str, str]:
    """Bad tokens, each built from a valid token's claims."""
    now = int(time.time())
    without = {
        k: {c: v for c, v in claims.items() if c != k}
        for k in ("exp", "sub", "sid", "jti", "iss", "aud", "iat")
    }
    header, payload, signature = forge(claims).split(".")
    tampered = dict(claims, sub="999999")
    return {
        **{
            f"alg {alg}": _none_token(claims, alg)
            for alg in ("none", "None", "NONE", "nOnE")
        },
        "refresh secret": forge(claims, secret=REFRESH_SECRET),
        "tampered payload": f"{header}.{b64(tampered)}.{signature}",
        "tampered signature": f"{header}.{payload}.{signature[::-1]}",
        "wrong iss": forge(dict(claims, iss="someone-else")),
        "wrong aud": forge(dict(claims, aud="someone-else")),
        **{f"missing {k}": forge(v) for k, v in without.items()},
        "future nbf": forge(dict(claims, nbf=now + 600)),
        "future iat": forge(dict(claims, iat=now + 600)),
        "typ JWT": forge(claims, headers={"typ": "JWT"}),
        "no typ": jwt.encode(
            claims, ACCESS_SECRET, algorithm="HS256", headers={"typ": None}
        ),
        "HS512 instead of pinned HS256": forge(claims, algorithm="HS512"),
        "integer sub": forge(dict(claims, sub=1)),
        "garbage": "not-a-token",
        "two dots": "..",
        "bad base64": "a.b.c",
        "unicode": "ä.ö.ü",
        "huge": "A" * 100_000,
        "json header array": f"{b64(b'[]')}.{payload}.{signature}",
    }


@pytest.mark.parametrize("case", list(mutations({"sub": "1"})))
def test_bad_tokens_are_401(token: str, client: FlaskClient, case: str) -> None:
    bad = mutations(claims_of(token))[case]
    response = client.get("/api/profile", headers=bearer(bad))
    assert_401(response, "TOKEN_INVALID")


def test_async_view(token: str, client: FlaskClient) -> None:
    response = client.get("/api/async", headers=bearer(token))
    assert response.status_code == 200
    assert response.get_json() == {"sub": claims_of(token)["sub"]}
    assert_401(client.get("/api/async"), "TOKEN_MISSING")


def test_options_passes_without_token(protected: Flask, client: FlaskClient) -> None:
    assert client.options("/api/preflight").status_code == 200
    assert_401(client.get("/api/preflight"), "TOKEN_MISSING")


def test_decorator_keeps_view_name(protected: Flask) -> None:
    assert protected.view_functions["profile"].__name__ == "profile"


@contextmanager
def count_database_uses(engine: Engine) -> Iterator[list[str]]:
    """Each checkout of a pooled connection: one use of the database, however
    the statement is sent (the PostgreSQL hot path bypasses SQLAlchemy's
    cursor events)."""
    uses: list[str] = []

    def checkout(*args: Any) -> None:
        uses.append("checkout")

    event.listen(engine.pool, "checkout", checkout)
    try:
        yield uses
    finally:
        event.remove(engine.pool, "checkout", checkout)


@pytest.mark.parametrize(("revocation", "checks"), [("off", 0), ("database", 1)])
def test_database_work_per_request(
    make_app: Any, engine: Engine, revocation: str, checks: int
) -> None:
    """Verifying a token needs no database; the database revocation store
    adds one query; the user is loaded only when the view touches it."""
    app = make_app(TOKENAUTH_REVOCATION=revocation)

    @app.get("/claims")
    @login_required
    def claims() -> Any:
        return {"sub": current_claims["sub"]}

    @app.get("/user")
    @login_required
    def user() -> Any:
        return {"email": current_user.email}

    client = app.test_client()
    token = Auth(client).register().get_json()["accessToken"]
    with count_database_uses(engine) as statements:
        assert client.get("/claims", headers=bearer(token)).status_code == 200
        assert len(statements) == checks
        statements.clear()
        assert client.get("/user", headers=bearer(token)).status_code == 200
        assert len(statements) == checks + 1


def test_deleted_user(token: str, client: FlaskClient, engine: Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM users")
    assert_401(client.get("/api/profile", headers=bearer(token)), "USER_NOT_FOUND")
    # The database revocation store sees the deletion even without the user.
    assert_401(client.get("/api/claims", headers=bearer(token)), "USER_NOT_FOUND")


def test_custom_user_loader(make_app: Any, auth: Auth) -> None:
    from flask_tokenauth import TokenAuth, auth_bp

    loaded: list[str] = []
    app = Flask(__name__)
    app.config.update(make_app().config)
    TokenAuth(
        engine=make_app().extensions["tokenauth"].db.engine,
        user_loader=lambda sub: loaded.append(sub) or {"id": sub},
    ).init_app(app)
    app.register_blueprint(auth_bp)

    @app.get("/me")
    @login_required
    def me() -> Any:
        return {"me": current_user["id"]}  # type: ignore[index]

    client = app.test_client()
    token = Auth(client).register().get_json()["accessToken"]
    response = client.get("/me", headers=bearer(token))
    assert response.get_json() == {"me": claims_of(token)["sub"]}
    assert loaded == [claims_of(token)["sub"]]
