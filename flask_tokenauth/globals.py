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

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from flask import current_app, request
from werkzeug.local import LocalProxy

from ._state import EXTENSION_KEY, TokenAuthState, get_state, load_user
from .errors import TokenInvalid, TokenMissing, UserNotFound
from .models import AnonymousUser

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

    from .models import User

_UNLOADED: Any = object()
#: Where a request keeps what it knows about its caller: in its WSGI environ,
#: not on ``g``.  ``g`` belongs to the app context, which a request shares
#: with the ones before it when the app context outlives them (a test that
#: holds ``with app.app_context():``, as Flask-SQLAlchemy's docs show): the
#: second request would be served as the first one's user.
_CONTEXT_KEY = "flask_tokenauth.auth"
#: Set by an optional view that received no token.  Kept apart from
#: :data:`_CONTEXT_KEY` so that :func:`authenticate` (a strict
#: ``login_required`` called later in the same request) never mistakes it for
#: an authenticated context.
_ANONYMOUS_KEY = "flask_tokenauth.anonymous"


@dataclass
class AuthContext:
    """What one request knows about its caller, kept in its environ."""

    claims: dict[str, Any]
    user: Any = field(default=_UNLOADED)


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


def authenticate(environ: WSGIEnvironment | None = None) -> AuthContext:
    """Verify the request's access token (once per request), ask the
    revocation store about it, and return the context.

    This runs on every protected request, so each context-local proxy is
    resolved once (each hop through one costs about a microsecond).

    :param environ: the request's WSGI environ, if the caller has it.
    """
    if environ is None:
        environ = _environ()
    context: AuthContext | None = environ.get(_CONTEXT_KEY)
    if context is None:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        state: TokenAuthState = app.extensions[EXTENSION_KEY]
        claims = state.access_tokens.verify(bearer_token(environ))
        state.revocation.check(claims)
        context = AuthContext(claims)
        environ[_CONTEXT_KEY] = context
    return context


def authenticate_optional(environ: WSGIEnvironment | None = None) -> AuthContext | None:
    """:func:`authenticate`, but a request with no token at all (no
    ``Authorization`` header, or another scheme than Bearer) gives ``None``
    and marks the request anonymous.  A token that is there but malformed,
    expired or revoked still raises: its client must refresh, not be served
    as a visitor.
    """
    try:
        return authenticate(environ)
    except TokenMissing:
        (environ if environ is not None else _environ())[_ANONYMOUS_KEY] = True
        return None


def _context() -> AuthContext | None:
    """The request's context, ``None`` if an optional view found no token."""
    environ = _environ()
    context: AuthContext | None = environ.get(_CONTEXT_KEY)
    if context is None and not environ.get(_ANONYMOUS_KEY):
        context = authenticate(environ)
    return context


def _get_claims() -> dict[str, Any]:
    context = _context()
    return {} if context is None else context.claims


def _get_user() -> Any:
    context = _context()
    if context is None:
        return AnonymousUser()
    if context.user is _UNLOADED:
        context.user = load_user(get_state(), context.claims["sub"])
    if context.user is None:
        raise UserNotFound()
    return context.user


#: The verified claims of the request's access token (``sub``, ``sid``, ...).
current_claims: dict[str, Any] = cast(dict[str, Any], LocalProxy(_get_claims))

#: The user of the request's access token, loaded on first use.  Raises the
#: same 401 errors as :func:`login_required` if the request has no valid token,
#: and ``USER_NOT_FOUND`` if the user has been deleted since.  In an optional
#: view without a token, an :class:`~flask_tokenauth.models.AnonymousUser`
#: (``is_authenticated`` is ``False``); typed as the user model all the same,
#: so test ``is_authenticated`` before reading the user's own attributes there.
current_user: User = cast("User", LocalProxy(_get_user))
