"""A small API written the Flask-JWT-Extended way, as apps that move to
flask_tokenauth are written: ``create_access_token(identity=user)`` at its own
``/login``, a ``user_identity_loader``, a ``user_lookup_loader``, an
``additional_claims_loader``, ``jwt_required()`` (and ``optional=True``),
``get_jwt_identity()``, ``get_jwt()``, ``current_user`` and
``JWT_HEADER_TYPE = "Token"``.  ``tests/fje_converted_app.py`` is the same
app on flask_tokenauth; ``tests/test_coming_from_fje.py`` sends both the same
requests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask, request
from flask_jwt_extended import (
    JWTManager,
    create_access_token,
    current_user,
    get_jwt,
    get_jwt_identity,
    jwt_required,
)
from sqlalchemy import select
from werkzeug.security import check_password_hash

from .fje_models import Account, db


def create_app(config: Mapping[str, Any]) -> Flask:
    app = Flask(__name__)
    app.config.update(config)  # JWT_SECRET_KEY, SQLALCHEMY_DATABASE_URI
    app.config["JWT_HEADER_TYPE"] = "Token"
    db.init_app(app)
    jwt = JWTManager(app)

    @jwt.user_identity_loader
    def identity(user: Account) -> str:
        return str(user.id)

    @jwt.user_lookup_loader
    def lookup(_header: dict[str, Any], data: dict[str, Any]) -> Account | None:
        return db.session.get(Account, int(data["sub"]))

    @jwt.additional_claims_loader
    def claims(user: Account) -> dict[str, Any]:
        return {"role": user.role}

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
        return {"access_token": create_access_token(identity=user)}

    @app.get("/api/me")
    @jwt_required()
    def me() -> Any:
        return {
            "id": get_jwt_identity(),
            "username": current_user.username,
            "role": get_jwt()["role"],
        }

    @app.get("/api/hello")
    @jwt_required(optional=True)
    def hello() -> Any:
        return {"hello": current_user.username if current_user else "stranger"}

    @app.get("/api/undecorated")
    def undecorated() -> Any:
        return {"username": current_user.username}

    return app
