"""``tests/fje_app.py`` moved to flask_tokenauth.  Each change is marked
``# was:`` with the Flask-JWT-Extended line it replaces; the rest is the app
as it was (its model, its ``/login`` view, its password check).

docs/coming-from-fje.md maps each of these names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask, request
from sqlalchemy import select
from werkzeug.security import check_password_hash

from flask_tokenauth import (
    SQLAlchemyUserStore,
    TokenAuth,
    auth_bp,
    current_claims,
    current_user,
    current_user_as,
    login_required,
    login_user,
)

from .fje_models import Account, db

auth = TokenAuth()  # was: JWTManager(app)


def claims(sub: str, user: Account | None) -> dict[str, Any]:
    """was: @jwt.additional_claims_loader (the identity given to
    create_access_token: here the user, loaded at a refresh)."""
    return {"role": user.role if user is not None else "none"}


def create_app(config: Mapping[str, Any]) -> Flask:
    app = Flask(__name__)
    # TOKENAUTH_ACCESS_SECRET, TOKENAUTH_REFRESH_SECRET, SQLALCHEMY_DATABASE_URI
    app.config.update(config)
    app.config["TOKENAUTH_HEADER_TYPES"] = ["Token"]  # was: JWT_HEADER_TYPE
    app.config["TOKENAUTH_REGISTER_ENABLED"] = False  # sign-up stays the app's
    db.init_app(app)
    # was: user_identity_loader + user_lookup_loader: the store names users
    # by their primary key and loads them.
    store = SQLAlchemyUserStore(Account, login="username")
    auth.init_app(app, user_store=store, additional_claims=claims)
    app.register_blueprint(auth_bp)  # /api/auth/refresh, /logout, /sessions...

    @app.post("/login")
    def login() -> Any:
        body = request.get_json(silent=True) or {}
        user = db.session.scalars(
            select(Account).where(Account.username == body.get("username"))
        ).first()
        if user is None or not check_password_hash(
            user.password_hash, str(body.get("password"))
        ):
            return {"msg": "Bad username or password"}, 401
        # was: create_access_token(identity=user); also sets the refresh cookie.
        return {"access_token": login_user(user)}

    @app.get("/api/me")
    @login_required  # was: @jwt_required()
    def me() -> Any:
        return {
            "id": current_claims["sub"],  # was: get_jwt_identity()
            "username": current_user_as(Account).username,  # was: current_user
            "role": current_claims["role"],  # was: get_jwt()["role"]
        }

    @app.get("/api/hello")
    @login_required(optional=True)  # was: @jwt_required(optional=True)
    def hello() -> Any:
        # Unchanged: the anonymous user is falsy, as FJE's None.
        return {
            "hello": current_user_as(Account).username if current_user else "stranger"
        }

    @app.get("/api/undecorated")
    def undecorated() -> Any:
        return {"username": current_user_as(Account).username}

    return app
