"""``auth_bp``: register, login, refresh and logout, under ``/api/auth``.

The JSON shapes are the tutorial's, so its browser client works unchanged.
Every error is ``{"error": ..., "code": ...}``; see :mod:`.errors`.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, cast
from urllib.parse import urlsplit

from flask import Blueprint, Response, jsonify, request
from flask.sansio.app import App
from sqlalchemy import Table, insert, select, update
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException, default_exceptions

from ._headers import add_security_headers, clear_refresh_cookie, set_refresh_cookie
from ._passwords import hash_password, needs_rehash, verify_password
from ._refresh import IssuedToken
from ._validation import (
    check_password,
    normalize_email,
    read_json_object,
    require_string,
)
from .errors import (
    CrossSiteRequest,
    EmailTaken,
    InvalidCredentials,
    InvalidPassword,
    MethodNotAllowed,
    NotFound,
    RefreshTokenError,
    RefreshTokenMissing,
    RefreshTokenReused,
    from_http_exception,
)
from .extension import EXTENSION_KEY, TokenAuth, TokenAuthState, get_state
from .models import User

_users = cast(Table, User.__table__)

#: Routes accept every method but OPTIONS (left to Flask, for CORS preflight)
#: so that a wrong method is answered by us, in JSON, not by the router.
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


class AuthBlueprint(Blueprint):
    """A blueprint that sets the extension up on the app it is registered
    on, unless :class:`TokenAuth` already did."""

    def register(self, app: App, options: dict[str, Any]) -> None:
        if EXTENSION_KEY not in app.extensions:
            TokenAuth().init_app(app)
        super().register(app, options)


auth_bp = AuthBlueprint("tokenauth", __name__, url_prefix="/api/auth")


def _post_only() -> None:
    if request.method != "POST":
        raise MethodNotAllowed(["OPTIONS", "POST"])


def _token_response(
    body: dict[str, Any], status: int, state: TokenAuthState, issued: IssuedToken
) -> Response:
    response = jsonify(body)
    response.status_code = status
    set_refresh_cookie(response, state.settings, issued.token, issued.expires_at)
    return response


def _session_response(
    state: TokenAuthState, user_id: int, email: str, issued: IssuedToken, status: int
) -> Response:
    access = state.access_tokens.issue(user_id, issued.family_id)
    body = {"user": {"id": user_id, "email": email}, "accessToken": access}
    return _token_response(body, status, state, issued)


def _refuse_cross_site(state: TokenAuthState) -> None:
    """Refuse a cookie-authenticated request made by another site.

    An origin listed in ``TOKENAUTH_ALLOWED_ORIGINS`` passes.  Otherwise a
    request fails if its ``Origin`` is another host (or ``null``), or if the
    browser marks it ``Sec-Fetch-Site: cross-site``.  A request with neither
    header (a non-browser client) passes: SameSite=Strict already keeps
    browsers from sending the cookie cross-site.
    """
    origin = request.headers.get("Origin")
    listed = origin is not None and origin.lower() in state.settings.allowed_origins
    if listed:
        return
    if origin is not None and (
        origin == "null" or urlsplit(origin).netloc.lower() != request.host.lower()
    ):
        raise CrossSiteRequest()
    if request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
        raise CrossSiteRequest()


@auth_bp.route("/register", methods=_METHODS)
def register() -> Response:
    _post_only()
    state = get_state()
    settings = state.settings
    body = read_json_object(request, settings.max_content_length)
    email = normalize_email(require_string(body, "email"))
    password = check_password(require_string(body, "password"), settings)
    with state.db.begin() as conn:
        taken = conn.execute(select(_users.c.id).where(_users.c.email == email)).first()
    if taken:
        raise EmailTaken()
    password_hash = hash_password(password, settings.bcrypt_rounds)
    now = datetime.now(timezone.utc)
    try:
        with state.db.begin() as conn:
            user_id = conn.execute(
                insert(_users)
                .values(
                    email=email,
                    password_hash=password_hash,
                    created_at=now,
                    updated_at=now,
                )
                .returning(_users.c.id)
            ).scalar_one()
            issued = state.refresh_tokens.start_family(conn, user_id, now)
    except IntegrityError as e:
        # A concurrent registration of the same email won the race.
        raise EmailTaken() from e
    return _session_response(state, user_id, email, issued, 201)


@auth_bp.route("/login", methods=_METHODS)
def login() -> Response:
    _post_only()
    state = get_state()
    settings = state.settings
    body = read_json_object(request, settings.max_content_length)
    email = normalize_email(require_string(body, "email"))
    password = require_string(body, "password")
    if len(password) > settings.password_max_length or "\x00" in password:
        raise InvalidPassword()
    with state.db.begin() as conn:
        user = conn.execute(
            select(_users.c.id, _users.c.email, _users.c.password_hash).where(
                _users.c.email == email
            )
        ).first()
    # An unknown email is checked against a real hash of the same cost, so it
    # takes as long as a wrong password and fails with the same response.
    stored = user.password_hash if user else state.dummy_hash
    if not verify_password(password, stored) or user is None:
        raise InvalidCredentials()
    with state.db.begin() as conn:
        if needs_rehash(stored, settings.bcrypt_rounds):
            conn.execute(
                update(_users)
                .where(_users.c.id == user.id)
                .values(
                    password_hash=hash_password(password, settings.bcrypt_rounds),
                    updated_at=datetime.now(timezone.utc),
                )
            )
        issued = state.refresh_tokens.start_family(conn, user.id)
    return _session_response(state, user.id, user.email, issued, 200)


@auth_bp.route("/refresh", methods=_METHODS)
def refresh() -> Response:
    _post_only()
    state = get_state()
    _refuse_cross_site(state)
    try:
        token = request.cookies.get(state.settings.cookie_name)
        if not token:
            raise RefreshTokenMissing()
        try:
            with state.db.begin() as conn:
                issued = state.refresh_tokens.rotate(conn, token)
        except RefreshTokenReused as e:
            # Whoever holds the newest token of this family may be a thief:
            # revoke the whole family, so that both sides must log in again.
            with state.db.begin() as conn:
                state.refresh_tokens.revoke_family(conn, e.family_id)
            raise
    except RefreshTokenError as e:
        response = e.get_response()
        assert isinstance(response, Response)
        clear_refresh_cookie(response, state.settings)
        return response
    access = state.access_tokens.issue(issued.user_id, issued.family_id)
    return _token_response({"accessToken": access}, 200, state, issued)


@auth_bp.route("/logout", methods=_METHODS)
def logout() -> Response:
    _post_only()
    state = get_state()
    _refuse_cross_site(state)
    token = request.cookies.get(state.settings.cookie_name)
    if token:
        with state.db.begin() as conn:
            state.refresh_tokens.revoke_by_token(conn, token)
    response = jsonify(message="Logged out successfully")
    clear_refresh_cookie(response, state.settings)
    return response


@auth_bp.route("/", defaults={"path": ""}, methods=_METHODS)
@auth_bp.route("/<path:path>", methods=_METHODS)
def not_found(path: str) -> Response:
    raise NotFound()


@auth_bp.after_request
def _after_request(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return add_security_headers(response)


def _json_error(exc: HTTPException) -> Response:
    response = from_http_exception(exc).get_response()
    assert isinstance(response, Response)
    return response


# Registered by status on the blueprint, so they take precedence over the host
# app's own handlers (e.g. an HTML 404 page) for our routes only.
for _status in default_exceptions:
    auth_bp.register_error_handler(_status, _json_error)
