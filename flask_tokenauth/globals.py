"""``current_user`` and ``current_claims``: typed proxies to the
authenticated request's user and access-token claims.

The claims are verified once per request, by :func:`login_required` or on
first access; the user is loaded from the database only when a view touches
:data:`current_user`, and at most once per request.

In a ``login_required(optional=True)`` view that received no token,
:data:`current_user` is an :class:`~flask_tokenauth.models.AnonymousUser`
and :data:`current_claims` is empty.  Anywhere else (a view without the
decorator) a request without a valid token makes both *raise* the 401 error,
which goes through the app's error handlers like any exception; only the
decorator answers our JSON 401 whatever handlers the host has.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from flask import g, request
from flask.globals import app_ctx
from werkzeug.local import LocalProxy

from ._state import EXTENSION_KEY, TokenAuthState, get_state, load_user
from .errors import TokenInvalid, TokenMissing, UserNotFound
from .models import AnonymousUser

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

    from .models import User

_UNLOADED: Any = object()
#: ``g`` attributes: the request's verified claims (the request's own copy),
#: and its user once loaded.  Plain entries of ``g.__dict__``, not an object
#: holding both: one allocation less on every protected request.
_CLAIMS_KEY = "_tokenauth"
_USER_KEY = "_tokenauth_user"
#: ``g`` attribute set by an optional view that received no token.  Kept
#: apart from ``g._tokenauth`` so that :func:`authenticate` (a strict
#: ``login_required`` called later in the same request) never mistakes it for
#: an authenticated context.
_ANONYMOUS_KEY = "_tokenauth_anonymous"


def _environ() -> WSGIEnvironment:
    """The request's WSGI environ.  Through ``_get_current_object``: an
    attribute read through the ``request`` proxy costs over a microsecond,
    several times the lookup itself, and this runs on every protected
    request."""
    return request._get_current_object().environ  # type: ignore[attr-defined,no-any-return]


def bearer_token(environ: WSGIEnvironment | None = None) -> str:
    """The token of ``Authorization: Bearer <token>`` (scheme in any case).

    :param environ: the request's WSGI environ, if the caller has it.
    :raises TokenMissing: no such header.
    :raises TokenInvalid: a header that is not a single Bearer token.
    """
    if environ is None:
        environ = _environ()
    header: str | None = environ.get("HTTP_AUTHORIZATION")
    if not header:
        raise TokenMissing()
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        raise TokenMissing()
    token = token.strip()
    if not token or " " in token:
        raise TokenInvalid()
    return token


def authenticate(environ: WSGIEnvironment | None = None) -> dict[str, Any]:
    """Verify the request's access token (once per request), ask the
    revocation store about it, and return its claims.

    This runs on every protected request, so it resolves one context-local
    proxy (each hop through one costs about a microsecond), and a
    token seen before is found by its whole ``Authorization`` header: the
    header is parsed only the first time (see :meth:`.AccessTokens.verify`).

    :param environ: the request's WSGI environ, if the caller has it.
    """
    # One hop to the app context for both ``g`` and the app.
    context = app_ctx._get_current_object()  # type: ignore[attr-defined]
    request_globals = context.g.__dict__
    claims: dict[str, Any] | None = request_globals.get(_CLAIMS_KEY)
    if claims is None:
        if environ is None:
            environ = _environ()
        state: TokenAuthState = context.app.extensions[EXTENSION_KEY]
        tokens = state.access_tokens
        header: str | None = environ.get("HTTP_AUTHORIZATION")
        claims = tokens.cached(header) if header else None
        if claims is None:
            claims = tokens.verify(bearer_token(environ), cache_as=header)
        state.revocation.check(claims)
        # As ``g._tokenauth = claims`` does, without its Python-level
        # ``__setattr__``.
        request_globals[_CLAIMS_KEY] = claims
    return claims


def authenticate_optional(
    environ: WSGIEnvironment | None = None,
) -> dict[str, Any] | None:
    """:func:`authenticate`, but a request with no token at all (no
    ``Authorization`` header, or another scheme than Bearer) gives ``None``
    and marks the request anonymous.  A token that is there but malformed,
    expired or revoked still raises: its client must refresh, not be served
    as a visitor.
    """
    try:
        return authenticate(environ)
    except TokenMissing:
        setattr(g, _ANONYMOUS_KEY, True)
        return None


def _context() -> dict[str, Any] | None:
    """The request's claims, ``None`` if an optional view found no token."""
    request_globals = g._get_current_object().__dict__
    claims: dict[str, Any] | None = request_globals.get(_CLAIMS_KEY)
    if claims is None and not request_globals.get(_ANONYMOUS_KEY):
        claims = authenticate()
    return claims


def _get_claims() -> dict[str, Any]:
    claims = _context()
    return {} if claims is None else claims


def _get_user() -> Any:
    claims = _context()
    if claims is None:
        return AnonymousUser()
    request_globals = g._get_current_object().__dict__
    user = request_globals.get(_USER_KEY, _UNLOADED)
    if user is _UNLOADED:
        user = request_globals[_USER_KEY] = load_user(get_state(), claims["sub"])
    if user is None:
        raise UserNotFound()
    return user


#: The verified claims of the request's access token (``sub``, ``sid``, ...).
current_claims: dict[str, Any] = cast(dict[str, Any], LocalProxy(_get_claims))

#: The user of the request's access token, loaded on first use.  Raises the
#: same 401 errors as :func:`login_required` if the request has no valid token,
#: and ``USER_NOT_FOUND`` if the user has been deleted since.  In an optional
#: view without a token, an :class:`~flask_tokenauth.models.AnonymousUser`
#: (``is_authenticated`` is ``False``); typed as the user model all the same,
#: so test ``is_authenticated`` before reading the user's own attributes there.
current_user: User = cast("User", LocalProxy(_get_user))
