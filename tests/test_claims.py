"""The app's own claims in access tokens (``TokenAuth(additional_claims=...)``
and ``@auth.additional_claims_loader``), as Flask-JWT-Extended's
``additional_claims_loader``."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import jwt
import pytest
from flask import Flask, Response
from sqlalchemy import Engine

from flask_tokenauth import (
    TokenAuth,
    User,
    auth_bp,
    current_claims,
    login_required,
    login_user,
)
from flask_tokenauth._claims import RESERVED_CLAIMS, wants_user

from .conftest import ACCESS_SECRET, PASSWORD, Auth, base_config, bearer

Loader = Callable[..., Mapping[str, Any]]


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(
        token, ACCESS_SECRET, algorithms=["HS256"], options={"verify_aud": False}
    )


def tokens_of_every_route(app: Flask) -> list[str]:
    """An access token from each route that issues one: register, login,
    refresh, and a password change."""
    auth = Auth(app.test_client())
    tokens = [
        auth.register().get_json()["accessToken"],
        auth.login().get_json()["accessToken"],
        auth.refresh().get_json()["accessToken"],
    ]
    changed = auth.client.post(
        "/api/auth/password",
        json={"currentPassword": PASSWORD, "newPassword": "another long one"},
        headers=bearer(tokens[-1]),
    )
    return [*tokens, changed.get_json()["accessToken"]]


@pytest.fixture
def make_claims_app(engine: Engine) -> Callable[..., Flask]:
    def factory(loader: Loader | None = None, **config: Any) -> Flask:
        app = Flask(__name__)
        app.config.update(base_config(**config))
        TokenAuth(engine=engine, additional_claims=loader).init_app(app)
        app.register_blueprint(auth_bp)

        @app.get("/me")
        @login_required
        def me() -> Any:
            return {"role": current_claims.get("role"), "calls": current_claims["n"]}

        return app

    return factory


def test_every_issued_token_carries_the_claims(
    make_claims_app: Callable[..., Flask],
) -> None:
    """Register, login, refresh and password change all run the loader, each
    time anew (so a change to the user shows at the next refresh)."""
    calls: list[str] = []

    def loader(sub: str) -> dict[str, Any]:
        calls.append(sub)
        return {"role": "admin", "n": len(calls)}

    app = make_claims_app(loader)
    tokens = tokens_of_every_route(app)
    for n, token in enumerate(tokens, start=1):
        claims = claims_of(token)
        assert (claims["role"], claims["n"]) == ("admin", n)
        assert claims["sub"] == calls[n - 1]
    assert all(sub == calls[0] and isinstance(sub, str) for sub in calls)
    # ...and the app reads them back through current_claims.
    me = app.test_client().get("/me", headers=bearer(tokens[-1])).get_json()
    assert me == {"role": "admin", "calls": 4}


def test_decorator_form(engine: Engine) -> None:
    auth_ext = TokenAuth(engine=engine)

    @auth_ext.additional_claims_loader
    def loader(sub: str) -> dict[str, Any]:
        return {"tenant": f"t-{sub}"}

    app = Flask(__name__)
    app.config.update(base_config())
    auth_ext.init_app(app)
    app.register_blueprint(auth_bp)
    token = Auth(app.test_client()).register().get_json()["accessToken"]
    claims = claims_of(token)
    assert claims["tenant"] == f"t-{claims['sub']}"
    # A loader registered after init_app would reach no app: refused.
    with pytest.raises(RuntimeError, match=r"before TokenAuth\.init_app"):
        auth_ext.additional_claims_loader(loader)


def test_apps_keep_their_own_loader(make_claims_app: Callable[..., Flask]) -> None:
    first = make_claims_app(lambda sub: {"app": "first"})
    second = make_claims_app()
    token = Auth(first.test_client()).register().get_json()["accessToken"]
    assert claims_of(token)["app"] == "first"
    token = Auth(second.test_client()).login().get_json()["accessToken"]
    assert "app" not in claims_of(token)


@pytest.mark.parametrize("name", sorted(RESERVED_CLAIMS))
def test_reserved_claims_cannot_be_set(
    make_claims_app: Callable[..., Flask], name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A loader naming a reserved claim is a bug of the app: the request
    fails (JSON 500) with the reason in the log, and no token is issued
    with a forged ``sub``, ``exp``, ``sid``..."""
    Auth(make_claims_app().test_client()).register()
    app = make_claims_app(lambda sub: {name: "forged"}, PROPAGATE_EXCEPTIONS=False)
    with caplog.at_level(logging.ERROR):
        response = Auth(app.test_client()).login()
    assert response.status_code == 500
    assert response.is_json and "accessToken" not in response.get_json()
    assert f"cannot set the reserved claims {name}" in caplog.text


def test_reserved_claims_in_the_unit(make_claims_app: Callable[..., Flask]) -> None:
    app = make_claims_app(lambda sub: {"exp": 2**40, "email": "a@b.c"})
    tokens = app.extensions["tokenauth"].access_tokens
    with pytest.raises(ValueError, match="reserved claims exp"):
        tokens.issue(1, "s1")


def test_loader_must_return_a_mapping(make_claims_app: Callable[..., Flask]) -> None:
    app = make_claims_app(lambda sub: [("email", "a@b.c")])
    with pytest.raises(TypeError, match="must return a mapping"):
        app.extensions["tokenauth"].access_tokens.issue(1, "s1")


def test_a_loader_taking_the_user_is_given_it(
    make_claims_app: Callable[..., Flask],
) -> None:
    """``f(sub, user)``: the user object at register, login (the user at
    hand), refresh (loaded by the user store) and password change, so a claim
    of the user needs no private import; ``f(sub)`` loaders are unchanged
    (the tests above)."""
    seen: list[tuple[str, Any]] = []

    def loader(sub: str, user: User | None) -> dict[str, Any]:
        seen.append((sub, user))
        assert user is not None
        return {"role": user.email, "n": len(seen)}

    app = make_claims_app(loader)
    tokens = tokens_of_every_route(app)
    assert [claims_of(t)["role"] for t in tokens] == ["user@example.com"] * 4
    assert all(isinstance(user, User) for _, user in seen), seen
    assert {(sub, user.id) for sub, user in seen} == {(seen[0][0], int(seen[0][0]))}
    with app.test_request_context():
        token = login_user(seen[0][1].id, Response())
    assert claims_of(token)["role"] == "user@example.com"


def test_a_user_deleted_meanwhile_is_given_as_none(
    make_claims_app: Callable[..., Flask],
) -> None:
    def loader(sub: str, *, user: User | None) -> dict[str, Any]:  # keyword-only
        return {"role": "gone" if user is None else "here"}

    app = make_claims_app(loader)
    tokens = app.extensions["tokenauth"].access_tokens
    with app.app_context():
        assert claims_of(tokens.issue(2**31 - 1, "s1"))["role"] == "gone"


def test_which_loaders_take_the_user() -> None:
    def positional_only(sub: str, user: Any, /) -> dict[str, Any]:
        return {}

    assert wants_user(lambda sub, user: {})
    assert wants_user(lambda sub, *, user=None: {})
    assert not wants_user(lambda sub: {})
    assert not wants_user(lambda sub, usr: {})
    assert not wants_user(positional_only)
    assert not wants_user(dict)
