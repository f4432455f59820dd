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

from flask_tokenauth import TokenInvalid, current_claims, current_user, login_required
from flask_tokenauth._access import MAX_TOKEN_LENGTH, AccessTokens
from flask_tokenauth._sid import new_session_id

from .conftest import ACCESS_KID, ACCESS_SECRET, REFRESH_SECRET, Auth, bearer
from .test_fast_paths import wait_for


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

    # Views that read neither current_user nor current_claims: only the
    # decorator stands between them and an anonymous caller.
    @app.get("/api/bare")
    @login_required
    def bare() -> Any:
        return {"ok": True}

    @app.get("/api/async-bare")
    @login_required
    async def async_bare() -> Any:
        return {"ok": True}

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
        headers={"typ": "at+jwt", "kid": ACCESS_KID, **(headers or {})},
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


@pytest.mark.requirement("RFC-9068-2.1", "RFC-8725-3.11")
def test_valid_token_claims(token: str, client: FlaskClient) -> None:
    claims = claims_of(token)
    assert set(claims) >= {"sub", "iat", "exp", "iss", "aud", "jti", "sid"}
    assert isinstance(claims["sub"], str)
    assert claims["exp"] - claims["iat"] == 15 * 60
    assert jwt.get_unverified_header(token) == {
        "alg": "HS256",
        "typ": "at+jwt",
        "kid": ACCESS_KID,
    }
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


@pytest.mark.requirement("ASVS-5.0-9.2.1", "RFC-9068-4")
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
    header = {"alg": alg, "typ": "at+jwt", "kid": ACCESS_KID}
    return f"{b64(header)}.{b64(claims)}."


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
            claims,
            ACCESS_SECRET,
            algorithm="HS256",
            headers={"typ": None, "kid": ACCESS_KID},
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
@pytest.mark.requirement(
    "ASVS-5.0-7.2.1",
    "ASVS-5.0-9.1.1",
    "ASVS-5.0-9.1.2",
    "ASVS-5.0-9.2.1",
    "ASVS-5.0-9.2.2",
    "ASVS-5.0-9.2.3",
    "ASVS-5.0-6.8.2",
    "RFC-8725-3.1",
    "RFC-8725-3.8",
    "RFC-8725-3.9",
    "RFC-8725-3.11",
    "RFC-9068-4",
)
def test_bad_tokens_are_401(token: str, client: FlaskClient, case: str) -> None:
    bad = mutations(claims_of(token))[case]
    response = client.get("/api/profile", headers=bearer(bad))
    assert_401(response, "TOKEN_INVALID")


def test_async_view(token: str, client: FlaskClient) -> None:
    response = client.get("/api/async", headers=bearer(token))
    assert response.status_code == 200
    assert response.get_json() == {"sub": claims_of(token)["sub"]}
    assert_401(client.get("/api/async"), "TOKEN_MISSING")


@pytest.mark.parametrize("path", ["/api/bare", "/api/async-bare"])
def test_views_that_read_nothing_still_need_a_token(
    token: str, auth: Auth, client: FlaskClient, path: str
) -> None:
    assert client.get(path, headers=bearer(token)).status_code == 200
    assert_401(client.get(path), "TOKEN_MISSING")
    assert_401(client.get(path, headers=bearer("not-a-token")), "TOKEN_INVALID")
    assert_401(client.get(path, headers=bearer(token + "x")), "TOKEN_INVALID")
    auth.logout()
    assert_401(client.get(path, headers=bearer(token)), "TOKEN_REVOKED")


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


@pytest.mark.parametrize("revocation", ["off", "database"])
def test_database_work_per_request(
    make_app: Any, engine: Engine, revocation: str
) -> None:
    """Verifying a token needs no database, nor does the database revocation
    store once its copy of the revocations is current; the user is loaded
    only when the view touches it."""
    app = make_app(TOKENAUTH_REVOCATION=revocation, TOKENAUTH_REVOCATION_STALENESS=60)

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
    assert client.get("/claims", headers=bearer(token)).status_code == 200
    copy = getattr(app.extensions["tokenauth"].revocation, "copy", None)
    assert wait_for(lambda: copy is None or copy.current())
    with count_database_uses(engine) as statements:
        assert client.get("/claims", headers=bearer(token)).status_code == 200
        assert len(statements) == 0
        assert client.get("/user", headers=bearer(token)).status_code == 200
        assert len(statements) == 1


@pytest.mark.requirement("ASVS-5.0-7.4.2")
def test_deleted_user(token: str, client: FlaskClient, engine: Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM tokenauth_users")
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


# -- Strict claims: signed tokens of a shape we never issue ------------------


def other_digits(text: str, zero: str) -> str:
    """``text``'s ASCII digits written in the script whose zero is ``zero``."""
    return "".join(chr(ord(zero) + int(d)) for d in text)


def bad_shapes(claims: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Claims, each signed with the real secret, that differ from ``claims``
    (a real token's) in one shape only, so that nothing but the shape rule
    stands between them and a 200."""
    uid, iat, exp = claims["sub"], claims["iat"], claims["exp"]
    return {
        "string exp": {"exp": str(exp)},
        "string iat": {"iat": str(iat)},
        "string nbf": {"nbf": str(iat)},
        "bool iat": {"iat": True},
        "bool nbf": {"nbf": True},
        "far-future exp": {"exp": exp + 10 * 365 * 86400},
        "exp - iat one second too long": {"exp": iat + 15 * 60 + 1},
        "old iat, live exp": {"iat": iat - 3600},
        "sub with a space": {"sub": f" {uid}"},
        "sub with a trailing newline": {"sub": f"{uid}\n"},
        "sub with a plus": {"sub": f"+{uid}"},
        "sub with a leading zero": {"sub": f"0{uid}"},
        "sub in Arabic-Indic digits": {"sub": other_digits(uid, "\u0660")},
        "sub in fullwidth digits": {"sub": other_digits(uid, "\uff10")},
        "sub with underscores": {"sub": f"{uid}_0"},
        "sub zero": {"sub": "0"},
        "negative sub": {"sub": "-1"},
        "sub beyond 64 bits": {"sub": "9" * 30},
        "sub beyond the 32-bit id column": {"sub": str(2**31)},
        "integer sid": {"sid": 123},
        "list sid": {"sid": [claims["sid"]]},
        "upper-case sid": {"sid": claims["sid"].upper()},
        "sid one character short": {"sid": claims["sid"][:-1]},
        "sid with a newline": {"sid": claims["sid"] + "\n"},
        "sid not hex": {"sid": "g" * 32},
    }


@pytest.mark.parametrize(
    "case", list(bad_shapes({"sub": "1", "sid": "", "iat": 0, "exp": 0}))
)
def test_signed_tokens_of_a_foreign_shape_are_refused(
    token: str, client: FlaskClient, case: str
) -> None:
    """Refused on first use and on the next (the cached path), never 500."""
    claims = claims_of(token)
    bad = forge({**claims, **bad_shapes(claims)[case]})
    for _use in range(2):
        assert_401(client.get("/api/claims", headers=bearer(bad)), "TOKEN_INVALID")


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"nbf": 0},
        {"nbf": 0.5},
        {"iat": 0.5, "exp": 15 * 60 + 0.5},
    ],
    ids=["as issued", "integer nbf", "float nbf", "float times"],
)
def test_signed_tokens_of_our_shape_are_accepted(
    token: str, client: FlaskClient, change: dict[str, float]
) -> None:
    """The control of the test above: forging alone is not what refuses."""
    claims = claims_of(token)
    shifted = {k: claims["iat"] + v for k, v in change.items()}
    forged = forge({**claims, **shifted})
    for _use in range(2):
        response = client.get("/api/claims", headers=bearer(forged))
        assert response.status_code == 200


def test_largest_user_id_is_a_user_not_found(token: str, client: FlaskClient) -> None:
    """The range ends where the id column does: the largest id passes the
    shape rule and is looked up (no such user), on SQLite and PostgreSQL."""
    sub = str(2**31 - 1)
    sid = new_session_id(REFRESH_SECRET.encode(), sub)
    forged = forge(dict(claims_of(token), sub=sub, sid=sid))
    assert_401(client.get("/api/profile", headers=bearer(forged)), "USER_NOT_FOUND")


def test_the_subject_rule_is_replaceable(app: Flask) -> None:
    """A user store with ids of another shape passes its own rule."""
    settings = app.extensions["tokenauth"].settings
    tokens = AccessTokens(settings, is_subject=lambda sub: sub.startswith("u-"))
    secret = settings.refresh_secret
    alice = tokens.issue("u-alice", new_session_id(secret, "u-alice"))
    assert tokens.verify(alice)["sub"] == "u-alice"
    with pytest.raises(TokenInvalid):
        tokens.verify(tokens.issue(7, new_session_id(secret, 7)))


def padded(claims: dict[str, Any], length: int) -> str:
    """A token of ``claims`` signed with the real secret, padded with an
    extra claim to ``length`` characters (or one more: base64 grows in
    steps of one or two)."""
    base = len(forge({**claims, "pad": ""}))
    size = max((length - base) * 3 // 4 - 4, 0)  # base64: 4 characters per 3 bytes
    token = forge({**claims, "pad": "x" * size})
    while len(token) < length and size < length:
        size += 1
        token = forge({**claims, "pad": "x" * size})
    assert len(token) in (length, length + 1)
    return token


@pytest.mark.parametrize(
    ("length", "status"), [(MAX_TOKEN_LENGTH - 8, 200), (MAX_TOKEN_LENGTH + 8, 401)]
)
def test_length_guard_refuses_validly_signed_long_tokens(
    token: str, client: FlaskClient, length: int, status: int
) -> None:
    long = padded(claims_of(token), length)
    response = client.get("/api/claims", headers=bearer(long))
    assert response.status_code == status
    if status == 401:
        assert_401(response, "TOKEN_INVALID")
