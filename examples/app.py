"""The tutorial's API as an ordinary Flask app using flask_tokenauth.

Run it with ``make run`` (creates ``.env`` with dev secrets and the SQLite
database), or by hand::

    flask --app examples/app.py tokenauth db upgrade
    flask --app examples/app.py run

Configuration comes from the environment or a ``.env`` file: the tutorial's
names (``DATABASE_URL``, ``ACCESS_TOKEN_SECRET``, ``REFRESH_TOKEN_SECRET``,
``ACCESS_TOKEN_EXPIRES_IN``, ``REFRESH_TOKEN_EXPIRES_IN``), the ``MAIL_*``
keys Flask-Mail reads (``MAIL_SERVER``, ``MAIL_PORT``, ...) and any
``TOKENAUTH_*`` variable as the config key of that name.

The account flows are on (address verification ``optional``, password
reset, address change, sign-in by email).  With no ``MAIL_SERVER`` the mails
are written to the log, where a developer clicks the link, and the links
point at ``http://127.0.0.1:5000`` (``make run``); set
``TOKENAUTH_LINK_BASE_URL`` when serving elsewhere.  The pages those links
open are the demo page at the paths of the ``TOKENAUTH_*_URL`` defaults
(``/reset-password#token=...``): the token is in the fragment, which the
browser never sends, and the page POSTs it in a JSON body.

The second factor: authenticator apps (TOTP) and recovery codes are on (the
package's default); passkeys are on too when the ``webauthn`` package (the
``[passkeys]`` extra) is installed, for the page at
``http://localhost:5000``: browsers refuse an IP address as a WebAuthn
relying party, so open the demo at ``localhost``, not ``127.0.0.1``, to use
them (``make run`` serves both; set ``TOKENAUTH_WEBAUTHN_ORIGINS`` when
serving elsewhere, or ``TOKENAUTH_PASSKEYS_ENABLED=false``).

As in the tutorial, access tokens carry the user's ``email`` (an
``additional_claims`` loader) and every response of the app, not only the
auth endpoints', has the security headers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from flask import Flask, request, send_from_directory
from flask.logging import default_handler
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


def _flag(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


#: The ``MAIL_*`` keys of Flask-Mail, Flask-Mailman (and of flask_tokenauth's
#: own SMTP sender) that are not strings, with their parsers: the
#: environment has only strings, and ``"false"`` is a true string.
MAIL_TYPES: dict[str, Callable[[str], Any]] = {
    "MAIL_PORT": int,
    "MAIL_MAX_EMAILS": int,
    "MAIL_TIMEOUT": float,
    **dict.fromkeys(
        (
            "MAIL_USE_TLS",
            "MAIL_USE_SSL",
            "MAIL_DEBUG",
            "MAIL_SUPPRESS_SEND",
            "MAIL_ASCII_ATTACHMENTS",
            "MAIL_USE_LOCALTIME",
        ),
        _flag,
    ),
}

#: The account flows, on; the environment may say otherwise.  (And a From
#: address, so that ``MAIL_SERVER`` and ``MAIL_PORT`` of a local catcher such
#: as Mailpit are enough.)
DEFAULTS = {
    "MAIL_DEFAULT_SENDER": "flask_tokenauth demo <no-reply@example.com>",
    "TOKENAUTH_EMAIL_VERIFICATION": "optional",
    "TOKENAUTH_PASSWORD_RESET_ENABLED": "true",
    "TOKENAUTH_CHANGE_EMAIL_ENABLED": "true",
    "TOKENAUTH_EMAIL_LOGIN_ENABLED": "true",
    "TOKENAUTH_LINK_BASE_URL": "http://127.0.0.1:5000",
}

#: Passkeys for the page at http://localhost:5000 (the RP id ``localhost``:
#: WebAuthn takes a domain, never an IP address, and ``http://`` only on
#: ``localhost``), when the extra that verifies them is installed; without it
#: the app starts as before, TOTP only.
if find_spec("webauthn") is not None:
    DEFAULTS.update(
        {
            "TOKENAUTH_PASSKEYS_ENABLED": "true",
            "TOKENAUTH_WEBAUTHN_RP_ID": "localhost",
            "TOKENAUTH_WEBAUTHN_ORIGINS": "http://localhost:5000",
            "TOKENAUTH_WEBAUTHN_RP_NAME": "flask_tokenauth demo",
        }
    )

#: The pages the mailed links open: the ``TOKENAUTH_*_URL`` defaults.
LINK_PAGES = (
    "/verify-email",
    "/reset-password",
    "/change-email/confirm",
    "/change-email/cancel",
    "/email-login",
)


def settings_from(values: Mapping[str, str | None]) -> dict[str, Any]:
    """Config keys from the tutorial's names, ``MAIL_*`` and ``TOKENAUTH_*``,
    over the example's own defaults (:data:`DEFAULTS`)."""
    config: dict[str, Any] = dict(DEFAULTS)
    for name, key in TUTORIAL_NAMES.items():
        if values.get(name):
            config[key] = values[name]
    for key, value in values.items():
        if key.startswith("MAIL_") and value:
            config[key] = MAIL_TYPES.get(key, str)(value)
    config.update({k: v for k, v in values.items() if k.startswith("TOKENAUTH_")})
    return config


def log_mail_unless_configured(app: Flask) -> None:
    """No way to send mail configured: each mail goes to the log (at INFO,
    shown on the console), where a developer clicks its link."""
    if any(
        app.config.get(k)
        for k in ("MAIL_SERVER", "TOKENAUTH_MAIL_BACKEND", "TOKENAUTH_MAIL_SENDER")
    ):
        return
    app.config["TOKENAUTH_MAIL_BACKEND"] = "log"
    logger = logging.getLogger("flask_tokenauth")
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    if not logger.hasHandlers():
        logger.addHandler(default_handler)


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
    log_mail_unless_configured(app)

    TokenAuth(app, additional_claims=email_claim)
    app.register_blueprint(auth_bp)

    @app.get("/")
    def index() -> Any:
        """The demo page, built on the package's client (``client.js``)."""
        return send_from_directory(HERE / "static", "index.html")

    def link_page() -> Any:
        """The demo page, at a path a mailed link opens.  It reads the token
        from the fragment (never sent to a server) and removes it from the
        address bar before any request; ``no-referrer`` on top, so not even
        the path of the page tells a site it links to where the user was."""
        response = send_from_directory(HERE / "static", "index.html")
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    for path in LINK_PAGES:
        app.add_url_rule(path, f"link_page{path.replace('/', '_')}", link_page)

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
