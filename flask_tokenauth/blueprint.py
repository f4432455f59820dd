"""``auth_bp``, the blueprint: its routes live in :mod:`._auth_views`
(register, login, refresh, logout), :mod:`._session_views` (sessions,
log out elsewhere / everywhere, password change) and :mod:`._client_views`
(the browser client, ``client.js``).

Every response of the blueprint is JSON, including errors the router or
werkzeug raise before a view runs; see :mod:`.errors`.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request
from flask.sansio.app import App
from werkzeug.exceptions import HTTPException, default_exceptions

from ._headers import add_security_headers
from .errors import MethodNotAllowed, NotFound, from_http_exception
from .extension import EXTENSION_KEY, TokenAuth

#: Routes accept every method but OPTIONS (left to Flask, for CORS preflight)
#: so that a wrong method is answered by us, in JSON, not by the router.
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


class AuthBlueprint(Blueprint):
    """A blueprint that sets the extension up on the app it is registered
    on, unless :class:`TokenAuth` already did."""

    def register(self, app: App, options: dict[str, Any]) -> None:
        if EXTENSION_KEY not in app.extensions:
            TokenAuth().init_app(app)
        super().register(app, options)


auth_bp = AuthBlueprint("tokenauth", __name__, url_prefix="/api/auth")


def allow(*methods: str) -> None:
    """Refuse the request with 405 unless its method is one of ``methods``."""
    if request.method not in methods:
        raise MethodNotAllowed(["OPTIONS", *methods])


@auth_bp.route("/", defaults={"path": ""}, methods=ALL_METHODS)
@auth_bp.route("/<path:path>", methods=ALL_METHODS)
def not_found(path: str) -> Response:
    raise NotFound()


@auth_bp.after_request
def _after_request(response: Response) -> Response:
    # Tokens must not be cached; the client script sets its own policy.
    if "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-store"
        response.headers["Pragma"] = "no-cache"
    return add_security_headers(response)


def _json_error(exc: HTTPException) -> Response:
    # Flask-Limiter's breach callback has already built our JSON 429.
    prepared = getattr(exc, "response", None)
    if isinstance(prepared, Response):
        return prepared
    response = from_http_exception(exc).get_response()
    return response


# Registered by status on the blueprint, so they take precedence over the host
# app's own handlers (e.g. an HTML 404 page) for our routes only.
for _status in default_exceptions:
    auth_bp.register_error_handler(_status, _json_error)

from . import _auth_views, _client_views, _session_views  # noqa: E402, F401  (routes)
