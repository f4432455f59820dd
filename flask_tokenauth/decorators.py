"""``@login_required``, ``@login_required(optional=True)`` and
``@login_required(verified=True)``."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast, overload

from flask import current_app, request

from ._claims import EMAIL_VERIFIED
from ._state import get_state
from .errors import EmailNotVerified, TokenAuthError
from .globals import authenticate, authenticate_optional

logger = logging.getLogger("flask_tokenauth")

F = TypeVar("F", bound=Callable[..., Any])

#: Methods that pass without a token: CORS preflight requests carry none.
EXEMPT_METHODS = frozenset({"OPTIONS"})


@overload
def login_required(view: F, /) -> F: ...


@overload
def login_required(
    *, optional: bool = False, verified: bool = False
) -> Callable[[F], F]: ...


def login_required(
    view: F | None = None, /, *, optional: bool = False, verified: bool = False
) -> F | Callable[[F], F]:
    """Refuse the request with a 401 JSON error unless it carries a valid
    access token in ``Authorization: Bearer <token>``.

    Use it bare (``@login_required``) or with options
    (``@login_required(optional=True)``).  Works on sync and async views.
    Verification uses only the token; the revocation check is a dict lookup
    with Redis, one query with the database store, nothing when off.
    :data:`~flask_tokenauth.current_user` loads the user only if the view uses
    it.  An expired token answers
    ``{"error": "Token expired", "code": "TOKEN_EXPIRED"}`` with
    ``WWW-Authenticate``, the client's cue to call ``/refresh``.

    The decorator *returns* that response rather than raising it, and so do
    our errors raised inside the view (``USER_NOT_FOUND`` from
    :data:`~flask_tokenauth.current_user`, say): a host's
    ``errorhandler(HTTPException)`` or HTML ``errorhandler(401)`` page would
    otherwise answer them without the code and the header, and the browser
    client would never refresh.  The host's ``after_request`` hooks still run.

    :param optional: let a request *without* a token reach the view, with
        :data:`~flask_tokenauth.current_user` an
        :class:`~flask_tokenauth.models.AnonymousUser` and
        :data:`~flask_tokenauth.current_claims` empty (as Flask-JWT-Extended's
        ``jwt_required(optional=True)``).  A token that is sent but malformed,
        expired or revoked is still a 401: the client must refresh it, not be
        served as an anonymous visitor without knowing.
    :param verified: also refuse a token whose ``email_verified`` claim is
        not ``true``: ``403 EMAIL_NOT_VERIFIED``, decided from the token
        alone (no query).  The claim is in the tokens only while
        ``TOKENAUTH_EMAIL_VERIFICATION`` is ``optional`` or ``required``;
        with it ``off`` every token is refused (and a warning logged).
        With ``optional=True`` a request without a token still passes.
    """
    if view is None:
        return lambda view: _protect(view, optional, verified)
    return _protect(view, optional, verified)


def _refuse_unverified(claims: dict[str, Any] | None) -> None:
    """``verified=True``: the token must say ``email_verified: true``.
    Off the hot path of every other view: only such views call it."""
    if claims is None or claims.get(EMAIL_VERIFIED) is True:
        return
    if (
        EMAIL_VERIFIED not in claims
        and get_state().settings.email_verification == "off"
    ):
        logger.warning(
            "tokenauth: @login_required(verified=True) refuses every token while"
            " TOKENAUTH_EMAIL_VERIFICATION is 'off': set it to 'optional' or"
            " 'required'."
        )
    raise EmailNotVerified()


def _verifying(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def check_verified(environ: Any) -> Any:
        claims = check(environ)
        _refuse_unverified(claims)
        return claims

    return check_verified


def _protect(view: F, optional: bool, verified: bool = False) -> F:
    check: Callable[[Any], Any] = authenticate_optional if optional else authenticate
    if verified:
        check = _verifying(check)

    # Decided once here rather than by ``ensure_sync`` on every request.  The
    # ``try`` costs nothing until something raises (Python 3.11+).
    if inspect.iscoroutinefunction(view):

        @wraps(view)
        def decorated(*args: Any, **kwargs: Any) -> Any:
            try:
                environ = request._get_current_object().environ  # type: ignore[attr-defined]
                if environ["REQUEST_METHOD"] not in EXEMPT_METHODS:
                    check(environ)
                return current_app.ensure_sync(view)(*args, **kwargs)
            except TokenAuthError as error:
                return error.get_response()

        return cast(F, decorated)

    @wraps(view)
    def decorated_sync(*args: Any, **kwargs: Any) -> Any:
        try:
            # One hop through the ``request`` proxy, not through a helper.
            environ = request._get_current_object().environ  # type: ignore[attr-defined]
            if environ["REQUEST_METHOD"] not in EXEMPT_METHODS:
                check(environ)
            return view(*args, **kwargs)
        except TokenAuthError as error:
            return error.get_response()

    return cast(F, decorated_sync)
