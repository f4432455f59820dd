"""``auth_bp``, the blueprint, built here from the plain view functions of
:mod:`.auth` (register, login, refresh, logout), :mod:`.sessions` (sessions,
log out elsewhere / everywhere, password change) and :mod:`.client` (the
browser client, ``client.js``), which never import this module: the
blueprint is made after them, so no module of the package imports in a
circle.

Every response of the blueprint is JSON, whatever the method (see
:func:`_take_every_method`) and whatever the host's error handlers; see
:mod:`flask_tokenauth.errors`.  Nothing of it is registered app-wide: a URL
none of our rules matches, under our prefix or not, is the host's, answered
as the host answers it, and a host request runs none of our code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, request
from flask.blueprints import BlueprintSetupState
from flask.sansio.app import App
from werkzeug.exceptions import HTTPException, default_exceptions

from .._headers import add_security_headers
from .._state import EXTENSION_KEY, get_state
from ..errors import from_http_exception
from ..extension import TokenAuth
from ..integrations import exempt_from_csrf
from ..openapi._document import OPERATIONS, served
from . import (
    auth,
    change_email,
    client,
    email_login,
    keys,
    mfa,
    openapi,
    passkeys,
    password_reset,
    reauth,
    sessions,
    totp,
    verify_email,
)
from ._common import ALL_METHODS, BLUEPRINT_NAME


class AuthBlueprint(Blueprint):
    """A blueprint that sets the extension up on the app it is registered
    on, unless :class:`TokenAuth` already did."""

    def register(self, app: App, options: dict[str, Any]) -> None:
        if EXTENSION_KEY not in app.extensions:
            TokenAuth().init_app(app)
        super().register(app, options)


#: The mail templates (``tokenauth/mail/*``): an app's own of the same name win.
_TEMPLATES = str(Path(__file__).resolve().parent.parent / "templates")
auth_bp = AuthBlueprint(
    BLUEPRINT_NAME, __name__, url_prefix="/api/auth", template_folder=_TEMPLATES
)
auth_bp.url_value_preprocessor(exempt_from_csrf)  # Flask-WTF's CSRFProtect


#: ``(rule, view)``, endpoint the view's name; or ``(rule, view, endpoint)``
#: where names would clash (every flow has a ``verify``).
_ROUTES: tuple[tuple[str, Any] | tuple[str, Any, str], ...] = (
    ("/register", auth.register),
    ("/login", auth.login),
    ("/refresh", auth.refresh),
    ("/logout", auth.logout),
    ("/sessions", sessions.list_sessions),
    ("/sessions/<session_id>", sessions.revoke_session),
    ("/logout-others", sessions.logout_others),
    ("/logout-all", sessions.logout_all),
    ("/password", sessions.change_password),
    # The mail flows (see docs/mail.md).
    ("/verify-email", verify_email.verify_email, "verify_email"),
    ("/verify-email/resend", verify_email.resend, "verify_email_resend"),
    ("/forgot-password", password_reset.forgot_password, "forgot_password"),
    ("/reset-password", password_reset.reset_password, "reset_password"),
    ("/change-email", change_email.request_change, "change_email"),
    ("/change-email/confirm", change_email.confirm, "change_email_confirm"),
    ("/change-email/cancel", change_email.cancel, "change_email_cancel"),
    ("/email-login", email_login.request_login, "email_login"),
    ("/email-login/verify", email_login.verify, "email_login_verify"),
    # The second factor and step-up (see docs/second-factor.md).
    ("/mfa", mfa.status, "mfa"),
    ("/mfa/verify", mfa.verify, "mfa_verify"),
    ("/mfa/recovery-codes", mfa.recovery_codes, "mfa_recovery_codes"),
    ("/mfa/totp", totp.remove, "mfa_totp"),
    ("/mfa/totp/enroll", totp.enroll, "mfa_totp_enroll"),
    ("/mfa/totp/confirm", totp.confirm, "mfa_totp_confirm"),
    ("/passkeys", passkeys.list_passkeys, "passkeys"),
    ("/passkeys/<passkey_id>", passkeys.passkey, "passkeys_one"),
    (
        "/passkeys/register/options",
        passkeys.register_options,
        "passkeys_register_options",
    ),
    ("/passkeys/register", passkeys.register, "passkeys_register"),
    ("/passkeys/login/options", passkeys.login_options, "passkeys_login_options"),
    ("/passkeys/login", passkeys.login, "passkeys_login"),
    ("/passkeys/verify/options", passkeys.verify_options, "passkeys_verify_options"),
    ("/passkeys/verify", passkeys.verify, "passkeys_verify"),
    ("/reauthenticate", reauth.reauthenticate, "reauthenticate"),
    ("/client.js", client.client_js),
    ("/client.d.ts", client.client_types),
)
for _route in _ROUTES:
    auth_bp.add_url_rule(
        _route[0],
        _route[2] if len(_route) == 3 else None,
        view_func=_route[1],
        methods=ALL_METHODS,
    )
_VIEWS = frozenset({*(route[1] for route in _ROUTES), keys.jwks, openapi.openapi})


@auth_bp.record
def _add_jwks_route(setup: BlueprintSetupState) -> None:
    """The JWKS document at ``TOKENAUTH_JWKS_PATH`` of the app the blueprint
    is registered on (under the blueprint's prefix), or nowhere.  A setup
    function, because the path is the app's setting: the extension is set up
    (see :meth:`AuthBlueprint.register`) before it runs."""
    path = get_state(setup.app).settings.jwks_path
    if path is not None:
        setup.add_url_rule(path, "jwks", keys.jwks, methods=ALL_METHODS)


@auth_bp.record
def _add_openapi_route(setup: BlueprintSetupState) -> None:
    """The API description at ``TOKENAUTH_OPENAPI_PATH`` (under the
    blueprint's prefix), or nowhere; as the JWKS route, a setup function."""
    path = get_state(setup.app).settings.openapi_path
    if path is not None:
        setup.add_url_rule(path, "openapi", openapi.openapi, methods=ALL_METHODS)


@auth_bp.record
def _take_every_method(setup: BlueprintSetupState) -> None:
    """Let our rules match every method, so that a request with a method no
    rule lists (TRACE, PROPFIND, ``FOO``) on one of our URLs reaches our
    view, which refuses it as it refuses a PUT: in JSON, with our headers,
    ``405`` and its own ``Allow``; and so do our blueprint's hooks (CSRF
    exemption, OPTIONS below).

    Flask always gives a rule a method list, and the router refuses a
    method outside it before any blueprint code runs (``request.blueprint``
    is ``None``): the host's 405 page would answer.  A rule without a list
    (``methods=None``, werkzeug's "any method") is matched as any other, so
    this costs no request anything, and the host's own URLs, their 404s and
    405s never meet our code.  Registered after the routes (the JWKS one
    included): a setup function runs in the order it was recorded.
    """
    prefix = f"{setup.name_prefix}.{setup.name}.".lstrip(".")
    views = setup.app.view_functions
    for rule in setup.app.url_map.iter_rules():
        # This registration's rules: its endpoints, with our views.
        if rule.endpoint.startswith(prefix) and views.get(rule.endpoint) in _VIEWS:
            rule.methods = None
            # Flask's own OPTIONS answer lists what the router allows, which
            # is nothing for such a rule: ours answers instead (below).
            rule.provide_automatic_options = False  # type: ignore[attr-defined]


#: The ``Allow`` of our answer to OPTIONS for an endpoint the API
#: description does not declare: the methods our rules list.
_OPTIONS_ALLOW = frozenset({*ALL_METHODS, "HEAD", "OPTIONS"})


def _methods_served(endpoint: str | None) -> frozenset[str] | None:
    """The methods the view of ``endpoint`` takes, as the API description
    declares them (the operations the app's settings switch on; ``HEAD``
    where declared: the public documents), with ``OPTIONS``: what a ``405``
    of the view lists, and what a client reading ``Allow`` or the
    description expects (schemathesis's ``allow_header_conformance`` found
    every method listed).  ``None`` when the settings switch every
    operation of the route off: the view answers, ``404`` as to any
    method."""
    local = (endpoint or "").rpartition(".")[2]
    if local not in OPERATIONS:
        return _OPTIONS_ALLOW
    methods = served(local, get_state().settings)
    if not methods:
        return None
    return frozenset({*methods, "OPTIONS"})


@auth_bp.before_request
def _answer_options() -> Response | None:
    """Answer OPTIONS (a CORS preflight) before the view, as Flask answers it
    for a rule with a method list: 200, empty, ``Allow``; no token needed,
    no rate limit counted.  Not if the app turned Flask's answer off
    (``PROVIDE_AUTOMATIC_OPTIONS``): then the view refuses it, as any
    method it does not take; nor on a route whose flow is switched off:
    its view answers ``404``, as to any method."""
    if request.method != "OPTIONS":
        return None
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if not app.config["PROVIDE_AUTOMATIC_OPTIONS"]:
        return None
    methods = _methods_served(request.endpoint)
    if methods is None:
        return None
    response: Response = app.response_class()
    response.allow.update(sorted(methods))
    return response


@auth_bp.after_request
def _after_request(response: Response) -> Response:
    # Tokens must not be cached; the client script sets its own policy.
    if "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-store"
        response.headers["Pragma"] = "no-cache"
    return add_security_headers(response)


def _json_error(exc: HTTPException) -> Response:
    # An exception that carries its response (``abort(response)``) keeps it.
    prepared = getattr(exc, "response", None)
    if isinstance(prepared, Response):
        return prepared
    response = from_http_exception(exc).get_response()
    return response


# Registered by status on the blueprint, so they take precedence over the host
# app's own handlers (e.g. an HTML 404 page) for our routes only.
for _status in default_exceptions:
    auth_bp.register_error_handler(_status, _json_error)
# Our own errors are not subclasses of werkzeug's per-status classes, so the
# handlers above do not match them; without this one a host's
# ``errorhandler(HTTPException)`` page would answer them (Flask looks for a
# blueprint's class handler before the app's).
auth_bp.register_error_handler(HTTPException, _json_error)
