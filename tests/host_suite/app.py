"""A small host application, as apps are before and after adopting
flask_tokenauth: Flask-SQLAlchemy, its own ``user`` table, items per user.

Its test suite (``test_items.py``, 25 tests) recreates its database per test
the common way (``sqlite://`` and ``db.create_all()``) and, with
flask_tokenauth, gets our tables from the ``tokenauth_tables`` fixture.
``HOST_SUITE_TOKENAUTH=0`` builds the app as it was before, its users named
by an ``X-User-Id`` header, to time the suite with and without the library
(``measure.py``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from functools import wraps
from typing import Any

from flask import Blueprint, Flask, abort, g, request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import ForeignKey, Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column

#: ``1`` (default): with flask_tokenauth, its tables from ``tokenauth_tables``;
#: ``migrations``: with it, its tables by running its migrations per test
#: (the slow way this suite replaces); ``0``: without it.
MODE = os.environ.get("HOST_SUITE_TOKENAUTH", "1")
WITH_TOKENAUTH = MODE != "0"

db = SQLAlchemy()
Model: Any = db.Model


class User(Model):
    __tablename__ = "user"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255), default="")


class Item(Model):
    __tablename__ = "item"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("user.id"), index=True)
    name: Mapped[str] = mapped_column(String(80))

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name}


def protected(view: Callable[..., Any]) -> Callable[..., Any]:
    """The host's own way to know the user: our ``login_required`` and
    ``current_user``, or (before) a trusted header."""
    if WITH_TOKENAUTH:
        from flask_tokenauth import current_user, login_required

        @wraps(view)
        def with_user(*args: Any, **kwargs: Any) -> Any:
            g.user_id = current_user.id
            return view(*args, **kwargs)

        return login_required(with_user)

    @wraps(view)
    def by_header(*args: Any, **kwargs: Any) -> Any:
        g.user_id = int(request.headers.get("X-User-Id") or abort(401))
        return view(*args, **kwargs)

    return by_header


api = Blueprint("api", __name__)


def own_item(item_id: int) -> Item:
    item = db.session.get(Item, item_id)
    if item is None or item.owner_id != g.user_id:
        abort(404)
    return item


@api.get("/me")
@protected
def me() -> dict[str, Any]:
    user = db.session.get(User, g.user_id)
    assert user is not None
    return {"id": user.id, "username": user.username}


@api.get("/items")
@protected
def list_items() -> dict[str, Any]:
    query = select(Item).where(Item.owner_id == g.user_id).order_by(Item.id)
    return {"items": [item.to_json() for item in db.session.scalars(query)]}


@api.post("/items")
@protected
def create_item() -> tuple[dict[str, Any], int]:
    name = (request.get_json(silent=True) or {}).get("name")
    if not isinstance(name, str) or not name:
        abort(400)
    item = Item(owner_id=g.user_id, name=name)
    db.session.add(item)
    db.session.commit()
    return item.to_json(), 201


@api.get("/items/<int:item_id>")
@protected
def get_item(item_id: int) -> dict[str, Any]:
    return own_item(item_id).to_json()


@api.patch("/items/<int:item_id>")
@protected
def rename_item(item_id: int) -> dict[str, Any]:
    item = own_item(item_id)
    item.name = str((request.get_json(silent=True) or {}).get("name") or item.name)
    db.session.commit()
    return item.to_json()


@api.delete("/items/<int:item_id>")
@protected
def delete_item(item_id: int) -> tuple[str, int]:
    db.session.delete(own_item(item_id))
    db.session.commit()
    return "", 204


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI="sqlite://",
        TOKENAUTH_REGISTER_ENABLED=False,  # the app has its own sign-up
    )
    app.config.update(config or {})
    db.init_app(app)
    if WITH_TOKENAUTH:
        from flask_tokenauth import SQLAlchemyUserStore, TokenAuth, auth_bp

        TokenAuth(app, user_store=SQLAlchemyUserStore(User, login="username"))
        app.register_blueprint(auth_bp)
    app.register_blueprint(api, url_prefix="/api")
    return app
