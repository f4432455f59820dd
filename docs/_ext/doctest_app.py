"""What the doctests of the pages set up without showing it: secrets in the
environment, a scratch SQLite database, and (for the pages that need one)
an app with our tables and a user.

The pages' visible code is what runs; this module only stands in for what a
reader has already done by then (generated secrets, ``flask tokenauth db
upgrade``).  Each call makes a fresh database file, so pages never share
rows.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

from flask import Flask

from flask_tokenauth import TokenAuth, auth_bp, current_user, login_required
from flask_tokenauth.testing import create_tables

_SCRATCH = Path(tempfile.mkdtemp(prefix="tokenauth-doctest-"))


def scratch_database_url() -> str:
    """A new SQLite database file of its own."""
    fd, path = tempfile.mkstemp(suffix=".sqlite3", dir=_SCRATCH)
    os.close(fd)
    return f"sqlite:///{path}"


def set_environment() -> None:
    """The quickstart's variables: two random secrets and a database."""
    os.environ["ACCESS_SECRET"] = secrets.token_urlsafe(48)
    os.environ["REFRESH_SECRET"] = secrets.token_urlsafe(48)
    os.environ["DATABASE_URL"] = scratch_database_url()


def secret_config() -> dict[str, object]:
    """The configuration every page's app needs, at bcrypt's lowest cost."""
    return {
        "TOKENAUTH_ACCESS_SECRET": secrets.token_urlsafe(48),
        "TOKENAUTH_REFRESH_SECRET": secrets.token_urlsafe(48),
        "TOKENAUTH_DATABASE_URL": scratch_database_url(),
        "TOKENAUTH_BCRYPT_ROUNDS": 4,
    }


def make_app() -> Flask:
    """The quickstart's app, its tables created: ``/api/profile`` behind
    ``login_required``."""
    app = Flask("yourapp")
    app.config.update(secret_config())
    TokenAuth(app)
    app.register_blueprint(auth_bp)

    @app.get("/api/profile")
    @login_required
    def profile() -> dict[str, object]:
        return {"user": {"id": current_user.id, "email": current_user.email}}

    with app.app_context():
        create_tables(app)
    return app


def register(app: Flask, email: str, password: str = "a long enough password") -> int:
    """A user of the built-in store, registered over HTTP; their id."""
    response = app.test_client().post(
        "/api/auth/register", json={"email": email, "password": password}
    )
    assert response.status_code == 201, response.json
    return int(response.json["user"]["id"])  # type: ignore[index]
