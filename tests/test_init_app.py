"""``TokenAuth.init_app`` takes every option the constructor takes (Flask's
extension convention); one given to ``init_app`` wins for that app, and
``config`` is merged over the constructor's."""

from __future__ import annotations

import inspect
from typing import Any

import jwt
import pytest
from flask import Flask
from sqlalchemy import Engine

from flask_tokenauth import (
    AnonymousUser,
    BuiltinUserStore,
    TokenAuth,
    User,
    auth_bp,
    current_user,
    current_user_as,
    login_required,
)
from flask_tokenauth._state import get_state

from .conftest import ACCESS_SECRET, Auth, base_config, bearer


def test_init_app_takes_every_option_of_the_constructor() -> None:
    constructor = inspect.signature(TokenAuth.__init__).parameters
    init_app = inspect.signature(TokenAuth.init_app).parameters
    options = {n: p for n, p in constructor.items() if n not in {"self", "app"}}
    assert options
    for name, parameter in options.items():
        assert name in init_app, name
        assert init_app[name].kind is inspect.Parameter.KEYWORD_ONLY, name
        assert init_app[name].annotation == parameter.annotation, name


def new_app() -> Flask:
    app = Flask(__name__)
    app.config.update(base_config())
    return app


def claims(token: str) -> dict[str, Any]:
    return jwt.decode(
        token, ACCESS_SECRET, algorithms=["HS256"], options={"verify_aud": False}
    )


def test_options_given_to_init_app_win_for_that_app(engine: Engine) -> None:
    """A factory's usual shape: the object at module level with defaults,
    each app given its own store, loaders and config in ``create_app``."""
    constructor_store, init_store = BuiltinUserStore(), BuiltinUserStore()
    loaded: list[str] = []
    auth = TokenAuth(
        user_store=constructor_store,
        additional_claims=lambda sub: {"from": "constructor"},
        user_loader=lambda sub: "constructor user",
        config={"issuer": "constructor", "audience": "constructor"},
    )
    app = new_app()
    auth.init_app(
        app,
        engine=engine,
        user_store=init_store,
        additional_claims=lambda sub: {"from": "init_app"},
        user_loader=lambda sub: loaded.append(sub) or User(id=int(sub), email="x@y"),
        config={"audience": "init_app"},
    )
    app.register_blueprint(auth_bp)

    @app.get("/me")
    @login_required
    def me() -> dict[str, Any]:
        return {"email": current_user.email}

    state = get_state(app)
    assert state.user_store is init_store and state.db.engine is engine
    token = Auth(app.test_client()).register().get_json()["accessToken"]
    issued = claims(token)
    assert issued["from"] == "init_app"
    # config merged key by key: init_app's audience, the constructor's issuer.
    assert (issued["iss"], issued["aud"]) == ("constructor", "init_app")
    response = app.test_client().get("/me", headers=bearer(token))
    assert response.get_json() == {"email": "x@y"}
    assert loaded == [issued["sub"]]
    # The object itself is unchanged: a second app gets the constructor's.
    other = new_app()
    auth.init_app(other, engine=engine)
    assert get_state(other).user_store is constructor_store
    assert get_state(other).settings.audience == "constructor"


def test_the_constructor_options_apply_when_init_app_gives_none(
    engine: Engine,
) -> None:
    store = BuiltinUserStore()
    app = new_app()
    TokenAuth(engine=engine, user_store=store).init_app(app)
    assert get_state(app).user_store is store


# -- current_user in and out of the decorator, and typed as a host model ------


@pytest.fixture
def views_app(make_app: Any) -> Flask:
    app: Flask = make_app()

    @app.get("/typed")
    @login_required
    def typed() -> dict[str, Any]:
        user = current_user_as(User)  # mypy: a User, whatever the proxy says
        return {"email": user.email}

    @app.get("/optional")
    @login_required(optional=True)
    def optional() -> dict[str, Any]:
        return {"truthy": bool(current_user), "repr": repr(current_user)}

    @app.get("/optional-typed")
    @login_required(optional=True)
    def optional_typed() -> dict[str, Any]:
        return {"email": current_user_as(User).email}

    @app.get("/undecorated")
    def undecorated() -> dict[str, Any]:
        return {"email": current_user.email}

    return app


def test_current_user_as_returns_the_model_or_refuses(views_app: Flask) -> None:
    client = views_app.test_client()
    token = Auth(client).register().get_json()["accessToken"]
    assert client.get("/typed", headers=bearer(token)).get_json() == {
        "email": "user@example.com"
    }
    with (
        views_app.test_request_context(headers=bearer(token)),
        pytest.raises(TypeError, match="not AnonymousUser"),
    ):
        current_user_as(AnonymousUser)
    views_app.testing = False  # the TypeError as the app's 500, not raised
    assert client.get("/optional-typed").status_code == 500
    assert client.get("/typed").get_json()["code"] == "TOKEN_MISSING"


def test_the_anonymous_user_is_falsy(views_app: Flask) -> None:
    """As Flask-JWT-Extended's ``None``: ``if current_user:`` keeps its
    meaning after the move."""
    client = views_app.test_client()
    assert client.get("/optional").get_json() == {
        "truthy": False,
        "repr": "<AnonymousUser>",
    }
    token = Auth(client).register().get_json()["accessToken"]
    assert client.get("/optional", headers=bearer(token)).get_json()["truthy"]


def test_current_user_in_an_undecorated_view_authenticates_then(
    views_app: Flask,
) -> None:
    """Not ``None`` (nor Flask-JWT-Extended's RuntimeError): the request is
    authenticated when the view first touches it, a 401 of ours without a
    valid token."""
    client = views_app.test_client()
    token = Auth(client).register().get_json()["accessToken"]
    response = client.get("/undecorated", headers=bearer(token))
    assert response.get_json() == {"email": "user@example.com"}
    for headers in ({}, bearer(token + "x")):
        response = client.get("/undecorated", headers=headers)
        assert response.status_code == 401
        assert response.get_json()["code"] in {"TOKEN_MISSING", "TOKEN_INVALID"}
