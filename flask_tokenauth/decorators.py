"""``@login_required``, ``@login_required(optional=True)``,
``@login_required(verified=True)``, and the assurance options:
``aal=2``, ``fresh=`` / ``max_age=``, ``mfa_pending=True`` and
``mfa_enrollment=True`` (see :mod:`._step_up`)."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from datetime import timedelta
from functools import partial, wraps
from typing import Any, TypeVar, cast, overload

from flask import current_app, request

from ._authlevel import ENROLL, PENDING
from ._claims import EMAIL_VERIFIED
from ._state import get_state
from ._step_up import requiring
from .errors import EmailNotVerified, TokenAuthError
from .globals import NO_RESTRICTION, authenticate, authenticate_optional

logger = logging.getLogger("flask_tokenauth")

F = TypeVar("F", bound=Callable[..., Any])

#: Methods that pass without a token: CORS preflight requests carry none.
EXEMPT_METHODS = frozenset({"OPTIONS"})


@overload
def login_required(view: F, /) -> F: ...


@overload
def login_required(
    *,
    optional: bool = False,
    verified: bool = False,
    aal: int | None = None,
    fresh: bool | int | timedelta | None = None,
    max_age: int | timedelta | None = None,
    mfa_pending: bool = False,
    mfa_enrollment: bool = False,
) -> Callable[[F], F]: ...


def login_required(
    view: F | None = None,
    /,
    *,
    optional: bool = False,
    verified: bool = False,
    aal: int | None = None,
    fresh: bool | int | timedelta | None = None,
    max_age: int | timedelta | None = None,
    mfa_pending: bool = False,
    mfa_enrollment: bool = False,
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
    :param aal: refuse a token of a lower ``aal`` claim with ``401
        MFA_REQUIRED`` (``aal=2``: the session completed a second factor).
    :param fresh: refuse a token whose ``auth_time`` is older than this
        many seconds (or ``timedelta``; ``True``:
        ``TOKENAUTH_REAUTHENTICATION_MAX_AGE``) with ``401
        REAUTHENTICATION_REQUIRED``, its challenge naming ``max_age``:
        ``POST /reauthenticate`` renews it.
    :param max_age: ``fresh``, as OpenID Connect names it.
    :param mfa_pending: let through a token of a session that waits for
        its second factor (the views that verify one); any other view
        answers it ``401 MFA_REQUIRED``.
    :param mfa_enrollment: let through a token of a user who must enrol a
        second factor first (``TOKENAUTH_MFA = "required"``: the enrolment
        views); any other view answers it ``403 MFA_ENROLLMENT_REQUIRED``.

    Every check reads the token's claims only: no query.
    """
    allow = frozenset(
        name
        for name, wanted in ((PENDING, mfa_pending), (ENROLL, mfa_enrollment))
        if wanted
    )
    checks = requiring(aal, fresh if max_age is None else max_age)

    def protect(view: F) -> F:
        return _protect(view, optional, verified, allow, checks)

    return protect if view is None else protect(view)


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


def _then(
    check: Callable[[Any], Any], more: Callable[[dict[str, Any] | None], None]
) -> Callable[[Any], Any]:
    """``check``, then ``more`` on the claims it returns."""

    def checked(environ: Any) -> Any:
        claims = check(environ)
        more(claims)
        return claims

    return checked


def _protect(
    view: F,
    optional: bool,
    verified: bool = False,
    allow: frozenset[str] = NO_RESTRICTION,
    more: Callable[[dict[str, Any] | None], None] | None = None,
) -> F:
    base = authenticate_optional if optional else authenticate
    check: Callable[[Any], Any] = partial(base, allow=allow) if allow else base
    if verified:
        check = _then(check, _refuse_unverified)
    if more is not None:
        check = _then(check, more)

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
