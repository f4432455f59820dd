"""``auth_bp``, the blueprint, built here from the plain view functions of
:mod:`.auth` (register, login, refresh, logout), :mod:`.sessions` (sessions,
log out elsewhere / everywhere, password change) and :mod:`.client` (the
browser client, ``client.js``), which never import this module: the
blueprint is made after them, so no module of the package imports in a
circle.

Every response of the blueprint is JSON, including errors the router or
werkzeug raise before a view runs; see :mod:`flask_tokenauth.errors`.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, request
from flask.blueprints import BlueprintSetupState
from flask.sansio.app import App
from werkzeug.exceptions import HTTPException, default_exceptions
from werkzeug.exceptions import MethodNotAllowed as RoutingMethodNotAllowed

from .._headers import add_security_headers
from .._state import EXTENSION_KEY, get_state
from ..errors import NotFound, from_http_exception
from ..extension import TokenAuth
from ..integrations import exempt_from_csrf
from . import auth, client, keys, sessions
from ._common import ALL_METHODS, BLUEPRINT_NAME


class AuthBlueprint(Blueprint):
    """A blueprint that sets the extension up on the app it is registered
    on, unless :class:`TokenAuth` already did."""

    def register(self, app: App, options: dict[str, Any]) -> None:
        if EXTENSION_KEY not in app.extensions:
            TokenAuth().init_app(app)
        super().register(app, options)


auth_bp = AuthBlueprint(BLUEPRINT_NAME, __name__, url_prefix="/api/auth")
auth_bp.url_value_preprocessor(exempt_from_csrf)  # Flask-WTF's CSRFProtect


@auth_bp.route("/", defaults={"path": ""}, methods=ALL_METHODS)
@auth_bp.route("/<path:path>", methods=ALL_METHODS)
def not_found(path: str) -> Response:
    raise NotFound()


_ROUTES: tuple[tuple[str, Any], ...] = (
    ("/register", auth.register),
    ("/login", auth.login),
    ("/refresh", auth.refresh),
    ("/logout", auth.logout),
    ("/sessions", sessions.list_sessions),
    ("/sessions/<session_id>", sessions.revoke_session),
    ("/logout-others", sessions.logout_others),
    ("/logout-all", sessions.logout_all),
    ("/password", sessions.change_password),
    ("/client.js", client.client_js),
    ("/client.d.ts", client.client_types),
)
for _rule, _view in _ROUTES:
    auth_bp.add_url_rule(_rule, view_func=_view, methods=ALL_METHODS)


@auth_bp.record
def _add_jwks_route(setup: BlueprintSetupState) -> None:
    """The JWKS document at ``TOKENAUTH_JWKS_PATH`` of the app the blueprint
    is registered on (under the blueprint's prefix), or nowhere.  A setup
    function, because the path is the app's setting: the extension is set up
    (see :meth:`AuthBlueprint.register`) before it runs."""
    path = get_state(setup.app).settings.jwks_path
    if path is not None:
        setup.add_url_rule(path, "jwks", keys.jwks, methods=ALL_METHODS)


@auth_bp.before_app_request
def _route_any_method() -> Response | None:
    """Give requests with a method no rule lists (TRACE, PROPFIND, ``FOO``)
    on one of our URLs to our view, which answers them as it answers a PUT:
    in JSON, with our headers, ``405`` and its own ``Allow``.

    The router refuses such a request before any blueprint code runs
    (``request.blueprint`` is ``None``), so neither our error handlers nor
    our after-request hooks would see it, and the host's HTML 405 page would
    answer.  Our rules cannot list every method (Flask always gives a rule a
    method list), so this app-wide hook finishes the routing instead: it
    costs one attribute check on requests that routed, and only looks
    further at a 405, where it matches the path again with a method the
    router accepted and takes the request only if the rule found is one of
    ours (under whatever prefix or parent blueprint it is mounted).
    """
    refused = request.routing_exception
    if refused is None or not isinstance(refused, RoutingMethodNotAllowed):
        return None
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    adapter = app.create_url_adapter(request)
    for method in refused.valid_methods or ():
        try:
            rule, args = adapter.match(method=method, return_rule=True)
        except HTTPException:
            continue
        if app.blueprints.get(rule.endpoint.rpartition(".")[0]) is not auth_bp:
            return None  # the host's URL: its 405 stays its own
        request.url_rule, request.view_args = rule, args
        request.routing_exception = None
        # Flask chose the hooks to run before the request was ours: run our
        # blueprints' as it would have, in its order.
        for name in reversed(request.blueprints):
            for preprocess in app.url_value_preprocessors.get(name, ()):
                preprocess(request.endpoint, request.view_args)
        for name in reversed(request.blueprints):
            for hook in app.before_request_funcs.get(name, ()):
                response = app.ensure_sync(hook)()
                if response is not None:
                    return response  # type: ignore[no-any-return]
        return None
    return None


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
