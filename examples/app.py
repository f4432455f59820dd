"""The tutorial's API as an ordinary Flask app using flask_tokenauth.

Run it with ``make run`` (creates ``.env`` with dev secrets and the SQLite
database), or by hand::

    flask --app examples/app.py tokenauth db upgrade
    flask --app examples/app.py run

Configuration comes from the environment or a ``.env`` file: the tutorial's
names (``DATABASE_URL``, ``ACCESS_TOKEN_SECRET``, ``REFRESH_TOKEN_SECRET``,
``ACCESS_TOKEN_EXPIRES_IN``, ``REFRESH_TOKEN_EXPIRES_IN``) and any
``TOKENAUTH_*`` variable as the config key of that name.

As in the tutorial, access tokens carry the user's ``email`` (an
``additional_claims`` loader) and every response of the app, not only the
auth endpoints', has the security headers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from flask import Flask, request, send_from_directory
from werkzeug.exceptions import HTTPException

from flask_tokenauth import TokenAuth, User, auth_bp, current_user, login_required
from flask_tokenauth.errors import from_http_exception

HERE = Path(__file__).resolve().parent

#: The tutorial's .env names and the config keys they set.
TUTORIAL_NAMES = {
    "DATABASE_URL": "TOKENAUTH_DATABASE_URL",
    "ACCESS_TOKEN_SECRET": "TOKENAUTH_ACCESS_SECRET",
    "REFRESH_TOKEN_SECRET": "TOKENAUTH_REFRESH_SECRET",
    "ACCESS_TOKEN_EXPIRES_IN": "TOKENAUTH_ACCESS_EXPIRES",
    "REFRESH_TOKEN_EXPIRES_IN": "TOKENAUTH_REFRESH_EXPIRES",
}


def settings_from(values: Mapping[str, str | None]) -> dict[str, Any]:
    """Config keys from the tutorial's names and from ``TOKENAUTH_*``."""
    config: dict[str, Any] = {}
    for name, key in TUTORIAL_NAMES.items():
        if values.get(name):
            config[key] = values[name]
    config.update({k: v for k, v in values.items() if k.startswith("TOKENAUTH_")})
    return config


def email_claim(sub: str, user: User | None) -> dict[str, Any]:
    """The tutorial's ``email`` claim, for every access token issued (login,
    refresh...).  A loader with a ``user`` parameter is given the user: the
    one just logged in, or at a refresh the user loaded from the built-in
    users table (``None`` if deleted meanwhile)."""
    return {"email": user.email} if user is not None else {}


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    # The tutorial sets its security headers on every response.
    app.config["TOKENAUTH_SECURITY_HEADERS_APP_WIDE"] = True
    # .env (in the working directory) first, the real environment wins.
    values = {**dotenv_values(".env"), **os.environ}
    app.config.update(settings_from(values))
    if config:
        app.config.update(config)

    TokenAuth(app, additional_claims=email_claim)
    app.register_blueprint(auth_bp)

    @app.get("/")
    def index() -> Any:
        """The demo page, built on the package's client (``client.js``)."""
        return send_from_directory(HERE / "static", "index.html")

    @app.get("/tutorial")
    def tutorial() -> Any:
        """The tutorial's own client, unchanged, for comparison."""
        return send_from_directory(HERE / "static", "tutorial.html")

    @app.get("/api/health")
    def health() -> Any:
        """A route of the app's own, needing no token."""
        return {"status": "ok"}

    @app.get("/api/profile")
    @login_required
    def profile() -> Any:
        return {"user": {"id": current_user.id, "email": current_user.email}}

    @app.errorhandler(HTTPException)
    def api_errors(error: HTTPException) -> Any:
        """The app's own /api routes answer errors in JSON too, as the
        blueprint does (``TRACE /api/profile``: 405 ``METHOD_NOT_ALLOWED``);
        its pages keep Flask's HTML."""
        if request.path.startswith("/api/"):
            return from_http_exception(error).get_response()
        return error

    return app
