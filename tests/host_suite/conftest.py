"""The host suite's fixtures, written as a Flask-SQLAlchemy app's usually
are: a new in-memory database per test, its tables from ``db.create_all()``.
Adopting flask_tokenauth added the ``_our_tables`` fixture (one line that
matters) and the ``headers`` it sends."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from .app import MODE, WITH_TOKENAUTH, User, create_app, db

CONFIG = {
    "TESTING": True,
    "TOKENAUTH_ACCESS_SECRET": "host-suite-access-secret-0123456789abcdef",
    "TOKENAUTH_REFRESH_SECRET": "host-suite-refresh-secret-0123456789abcdef",
}


@pytest.fixture
def app() -> Iterator[Flask]:
    app = create_app(CONFIG)
    with app.app_context():
        db.create_all()
        yield app
        db.session.remove()
        db.drop_all()


if MODE == "migrations":

    @pytest.fixture(autouse=True)
    def _our_tables(app: Flask) -> None:
        """The slow way, for comparison: our migrations for every test."""
        from flask_tokenauth._migrate import upgrade

        upgrade(app.extensions["tokenauth"].db.engine)

elif WITH_TOKENAUTH:

    @pytest.fixture(autouse=True)
    def _our_tables(tokenauth_tables: None) -> None:
        """flask_tokenauth's tables, made as fast as the app's own."""


if WITH_TOKENAUTH:

    @pytest.fixture
    def headers(
        tokenauth_headers: Callable[[Any], dict[str, str]],
    ) -> Callable[[User], dict[str, str]]:
        return tokenauth_headers

else:

    @pytest.fixture
    def headers() -> Callable[[User], dict[str, str]]:
        return lambda user: {"X-User-Id": str(user.id)}


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def add_user(username: str) -> User:
    user = User(username=username)
    db.session.add(user)
    db.session.commit()
    return user


@pytest.fixture
def alice(app: Flask) -> User:
    return add_user("alice")


@pytest.fixture
def bob(app: Flask) -> User:
    return add_user("bob")
