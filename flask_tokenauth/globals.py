"""``current_user`` and ``current_claims``: typed proxies to the
authenticated request's user and access-token claims.

The claims are verified once per request, by
:func:`~flask_tokenauth.login_required` or on first access; the user is
loaded from the database only when a view touches
:data:`~flask_tokenauth.current_user`, and at most once per request.

In a ``login_required(optional=True)`` view that received no token,
:data:`~flask_tokenauth.current_user` is an
:class:`~flask_tokenauth.AnonymousUser` (falsy, ``is_authenticated`` false)
and :data:`~flask_tokenauth.current_claims` is empty.

In a view without the decorator, touching either one *authenticates the
request then*: a valid token gives its user, and a missing or bad one
raises the 401 error, which goes through the app's error handlers like any
exception (our errors render their own JSON); only the decorator answers
our JSON 401 whatever handlers the host has.  Never ``None`` there, as
Flask-JWT-Extended's optional views give: a view that forgot its decorator
must not treat a caller without a token as nobody in particular, nor one
with a forged token as anonymous.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar, cast

from flask import current_app, request
from werkzeug.local import LocalProxy

from ._authlevel import ENROLL, PENDING, RESTRICTION_CLAIM
from ._state import EXTENSION_KEY, TokenAuthState, get_state, load_user
from .errors import (
    MfaEnrollmentRequired,
    MfaRequired,
    TokenInvalid,
    TokenMissing,
    UserNotFound,
)
from .models import AnonymousUser

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

    from .models import User

_UNLOADED: Any = object()
UserT = TypeVar("UserT")
#: Where a request keeps what it knows about its caller: in its WSGI environ,
#: not on ``g``.  ``g`` belongs to the app context, which a request shares
#: with the ones before it when the app context outlives them (a test that
#: holds ``with app.app_context():``, as Flask-SQLAlchemy's docs show): the
#: second request would be served as the first one's user.  Two plain
#: entries, the request's own copy of the verified claims and its user once
#: loaded, not an object holding both: one allocation less on every
#: protected request.
_CLAIMS_KEY = "flask_tokenauth.claims"
_USER_KEY = "flask_tokenauth.user"
#: Set by an optional view that received no token.  Kept apart from
#: :data:`_CLAIMS_KEY` so that :func:`authenticate` (a strict
#: ``login_required`` called later in the same request) never mistakes it for
#: an authenticated context.
_ANONYMOUS_KEY = "flask_tokenauth.anonymous"


def _environ() -> WSGIEnvironment:
    """The request's WSGI environ.  Through ``_get_current_object``: an
    attribute read through the ``request`` proxy costs over a microsecond,
    several times the lookup itself, and this runs on every protected
    request."""
    return request._get_current_object().environ  # type: ignore[attr-defined,no-any-return]


#: ``TOKENAUTH_HEADER_TYPES``'s default, as :func:`bearer_token` reads it.
BEARER_ONLY = frozenset({"bearer"})


def bearer_token(
    environ: WSGIEnvironment | None = None, schemes: frozenset[str] = BEARER_ONLY
) -> str:
    """The token of ``Authorization: <type> <token>``, for a type of
    ``schemes`` (lower-case: the scheme is matched in any case, as RFC 9110
    section 11.1 asks); ``""`` among them accepts a bare token
    (``Authorization: <token>``), as Flask-JWT-Extended's empty
    ``JWT_HEADER_TYPE`` does.

    :param environ: the request's WSGI environ, if the caller has it.
    :param schemes: the app's header types, lower-cased once at start-up
        (:attr:`~._state.TokenAuthState.header_schemes`): the hot path pays
        one set lookup, as it paid one comparison with ``"bearer"``.
    :raises TokenMissing: no such header, or another scheme.
    :raises TokenInvalid: a header of our scheme that is not a single token.
    """
    if environ is None:
        environ = _environ()
    header: str | None = environ.get("HTTP_AUTHORIZATION")
    if not header:
        raise TokenMissing()
    scheme, separator, token = header.partition(" ")
    if scheme.lower() not in schemes:
        if separator or "" not in schemes:
            raise TokenMissing()
        token = scheme  # a bare token
    token = token.strip()
    if not token or " " in token:
        raise TokenInvalid()
    return token


#: No restricted token passes (see :func:`authenticate`).
NO_RESTRICTION: frozenset[str] = frozenset()


def authenticate(
    environ: WSGIEnvironment | None = None, allow: frozenset[str] = NO_RESTRICTION
) -> dict[str, Any]:
    """Verify the request's access token (once per request), ask the
    revocation store about it, and return its claims.

    A restricted token (a session waiting for its second factor, or for
    the user's enrolment: see :mod:`._authlevel`) is refused unless its
    restriction is in ``allow``: ``401 MFA_REQUIRED`` or ``403
    MFA_ENROLLMENT_REQUIRED``.  An ordinary token pays one ``in`` for it.

    This runs on every protected request, so it resolves one context-local
    proxy (each hop through one costs about a microsecond), and a
    token seen before is found by its whole ``Authorization`` header: the
    header is parsed only the first time (see :meth:`.AccessTokens.verify`).

    :param environ: the request's WSGI environ, if the caller has it.
    """
    if environ is None:
        environ = _environ()
    claims: dict[str, Any] | None = environ.get(_CLAIMS_KEY)
    if claims is None:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        state: TokenAuthState = app.extensions[EXTENSION_KEY]
        tokens = state.access_tokens
        # A token seen before is found by the whole header: not parsed again.
        header: str | None = environ.get("HTTP_AUTHORIZATION")
        claims = tokens.cached(header) if header else None
        if claims is None:
            claims = tokens.verify(
                bearer_token(environ, state.header_schemes), cache_as=header
            )
        state.revocation.check(claims)
        environ[_CLAIMS_KEY] = claims
    if RESTRICTION_CLAIM in claims and claims[RESTRICTION_CLAIM] not in allow:
        _refuse_restricted(claims[RESTRICTION_CLAIM])
    return claims


def _refuse_restricted(restriction: Any) -> None:
    """The answer to a restricted token where its restriction is not let
    through.  An enrolment restriction lapses when the app no longer
    requires a factor (``TOKENAUTH_MFA`` back to ``optional``)."""
    if restriction == PENDING:
        raise MfaRequired()
    if restriction == ENROLL:
        if get_state().settings.mfa == "required":
            raise MfaEnrollmentRequired()
        return
    raise TokenInvalid()  # no token of ours says anything else


def authenticate_optional(
    environ: WSGIEnvironment | None = None, allow: frozenset[str] = NO_RESTRICTION
) -> dict[str, Any] | None:
    """:func:`authenticate`, but a request with no token at all (no
    ``Authorization`` header, or a scheme not in ``TOKENAUTH_HEADER_TYPES``)
    gives ``None`` and marks the request anonymous.  A token that is there
    but malformed, expired or revoked still raises: its client must refresh,
    not be served as a visitor.
    """
    try:
        return authenticate(environ, allow)
    except TokenMissing:
        (environ if environ is not None else _environ())[_ANONYMOUS_KEY] = True
        return None


def _context() -> dict[str, Any] | None:
    """The request's claims, ``None`` if an optional view found no token."""
    environ = _environ()
    claims: dict[str, Any] | None = environ.get(_CLAIMS_KEY)
    if claims is None and not environ.get(_ANONYMOUS_KEY):
        claims = authenticate(environ)
    return claims


def _get_claims() -> dict[str, Any]:
    claims = _context()
    return {} if claims is None else claims


def _get_user() -> Any:
    claims = _context()
    if claims is None:
        return AnonymousUser()
    environ = _environ()
    user = environ.get(_USER_KEY, _UNLOADED)
    if user is _UNLOADED:
        user = environ[_USER_KEY] = load_user(
            get_state(), claims["sub"], claims.get("idf")
        )
    if user is None:
        raise UserNotFound()
    return user


def current_user_as(model: type[UserT]) -> UserT:
    """:data:`current_user`, typed as your own user model::

        user = current_user_as(Account)   # mypy knows user.username

    :data:`current_user` is typed as the built-in :class:`~.models.User`: a
    module-level proxy cannot know the host's model, and a generic one would
    have to be spelled at every use anyway.  This checks the type once at
    run time and returns the object itself, not a proxy.  (``cast(Account,
    current_user)`` type-checks too, without the run-time check.)

    :raises TypeError: the user is not a ``model``: an
        :class:`~.models.AnonymousUser` in an optional view without a token
        (test ``current_user.is_authenticated`` first), or a user store
        loading another class.
    :raises AuthenticationError: as :data:`current_user` does.
    """
    user = _get_user()
    if not isinstance(user, model):
        raise TypeError(
            f"current_user is {type(user).__name__}, not {model.__name__}: in a"
            " login_required(optional=True) view, test"
            " current_user.is_authenticated first; elsewhere, check the user"
            " store's model."
        )
    return user


#: The verified claims of the request's access token (``sub``, ``sid``, ...).
current_claims: dict[str, Any] = cast(dict[str, Any], LocalProxy(_get_claims))

#: The user of the request's access token, loaded on first use.  Raises the
#: same 401 errors as :func:`login_required` if the request has no valid token,
#: and ``USER_NOT_FOUND`` if the user has been deleted since.  In an optional
#: view without a token, an :class:`~flask_tokenauth.models.AnonymousUser`
#: (falsy, ``is_authenticated`` is ``False``); typed as the user model all the
#: same, so test it before reading the user's own attributes there.  Typed as
#: the built-in :class:`~flask_tokenauth.models.User`: with a model of your
#: own, read it through :func:`current_user_as`.
current_user: User = cast("User", LocalProxy(_get_user))
