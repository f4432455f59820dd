"""A host app as they come: Flask-Login for its HTML pages (session cookie,
its own login form), Flask-WTF's CSRFProtect on its forms, error handlers of
its own, and flask_tokenauth for ``/api``.

This module imports ``current_user`` and ``login_required`` from
flask_tokenauth *and* serves HTML pages, the case that made every page 401.
"""

from __future__ import annotations

from typing import Any

import flask_login
from flask import Blueprint, Flask, abort, render_template_string, request, session
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import Engine, select

from flask_tokenauth import (
    TokenAuth,
    User,
    auth_bp,
    current_user,
    init_flask_login,
    login_required,
)
from flask_tokenauth._passwords import verify_password
from flask_tokenauth._state import get_state

from .conftest import base_config

PAGE = """{% if current_user.is_authenticated %}Hello {{ current_user.email }}
{%- else %}Hello visitor{% endif %}"""


def load_host_user(user_id: str) -> Any:
    """Flask-Login's ``user_loader``: the host's users are the built-in ones
    here (the user-store layer is another item)."""
    with get_state().db.session() as db:
        return db.get(User, int(user_id))


def create_app(
    engine: Engine,
    *,
    csrf: str | None = None,
    flask_login_bridge: bool = True,
    mount: str = "app",
    **config: Any,
) -> Flask:
    """The host app.

    :param csrf: ``"before"`` or ``"after"``: when ``CSRFProtect(app)`` runs
        relative to registering the blueprint; ``None``: no CSRFProtect.
    :param mount: ``"app"`` (as documented), ``"nested"`` (under a parent
        blueprint at ``/api/v1``) or ``"renamed"`` (``name="auth2"``).
    """
    app = Flask(__name__)
    app.config.update(base_config(SECRET_KEY="host-secret", **config))
    TokenAuth(engine=engine).init_app(app)
    login_manager = flask_login.LoginManager(app)
    login_manager.login_view = "html_login"
    login_manager.user_loader(load_host_user)

    if csrf == "before":
        CSRFProtect(app)
    if mount == "nested":
        parent = Blueprint("api_v1", __name__, url_prefix="/api/v1")
        parent.register_blueprint(auth_bp, url_prefix="/auth")
        app.register_blueprint(parent)
    elif mount == "renamed":
        app.register_blueprint(auth_bp, name="auth2", url_prefix="/api/auth2")
    else:
        app.register_blueprint(auth_bp)
    if csrf == "after":
        CSRFProtect(app)
    if flask_login_bridge:
        init_flask_login(app)

    add_host_views(app)
    return app


def add_host_views(app: Flask) -> None:
    # -- the host's error pages: they catch every HTTPException ---------------

    @app.errorhandler(401)
    def unauthorized_page(error: Exception) -> Any:
        return "<h1>Please log in</h1>", 401

    @app.errorhandler(403)
    def forbidden_page(error: Exception) -> Any:
        return "<h1>Forbidden</h1>", 403

    # -- HTML pages ---------------------------------------------------------------

    @app.get("/")
    @login_required(optional=True)
    def home() -> Any:
        # Our current_user: a token's user, or an anonymous one.
        return render_template_string(PAGE, current_user=current_user)

    @app.get("/flask-login-home")
    def flask_login_home() -> Any:
        # Flask-Login's current_user, through its context processor.
        return render_template_string(PAGE)

    @app.get("/account")
    @flask_login.login_required
    def account() -> Any:
        return f"Account of {flask_login.current_user.email}"

    @app.post("/html-login")
    def html_login() -> Any:
        with get_state().db.session() as db:
            user = db.scalars(
                select(User).where(User.email == request.form["email"])
            ).first()
        rounds = get_state().settings.bcrypt_rounds
        if user is None or not verify_password(
            request.form["password"], user.password_hash, rounds=rounds
        ):
            abort(403)
        flask_login.login_user(user)
        return "logged in"

    @app.post("/html-logout")
    def html_logout() -> Any:
        flask_login.logout_user()
        return "logged out"

    @app.post("/comment")
    def comment() -> Any:
        """A host form: CSRFProtect must keep guarding it."""
        return "commented"

    # -- the API --------------------------------------------------------------------

    @app.get("/api/me")
    @login_required
    def api_me() -> Any:
        return {"email": current_user.email}

    @app.get("/api/flask-login-me")
    @login_required
    def api_flask_login_me() -> Any:
        """Host code written for Flask-Login, reached with a token."""
        user = flask_login.current_user
        return {"email": user.email, "authenticated": user.is_authenticated}

    @app.post("/api/try-to-make-a-session")
    @login_required
    def api_make_session() -> Any:
        """Host code that writes the session on a token request: the session
        must not be saved, or the token would become a cookie."""
        flask_login.login_user(
            flask_login.current_user._get_current_object(), remember=True
        )
        session["visited"] = True
        return {"ok": True}

    @app.get("/api/both")
    @login_required
    def api_both() -> Any:
        return {
            "ours": current_user.email,
            "flask_login": flask_login.current_user.email,
        }

    @app.get("/visit")
    def visit() -> Any:
        """An anonymous visitor's page that puts something in the session."""
        session["seen"] = True
        return "welcome"

    @app.get("/api/flask-login-protected")
    @flask_login.login_required
    def api_flask_login_protected() -> Any:
        return {"email": flask_login.current_user.email}
