"""What the TOTP and ``/mfa`` views share: who the caller is, which
factors they have, how recent their authentication must be, and the
``GET /mfa`` body.  The assurance decisions themselves (the token's
``aal``, ``auth_time``, a pending session) are :mod:`.._assurance`'s; this
module only names which of its checks each view asks for."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Response

from .. import _assurance as assurance
from .._state import TokenAuthState, get_state
from ..decorators import login_required
from ..errors import NotFound, UserNotFound
from ..globals import _get_user as load_current_user
from ..globals import current_claims

logger = logging.getLogger("flask_tokenauth")

F = TypeVar("F", bound=Callable[..., Any])


def any_factor_on(view: F) -> F:
    """Answer ``404 NOT_FOUND`` (before any other check: the endpoint does
    not exist) while every factor kind is off (``TOKENAUTH_TOTP_ENABLED``
    and ``TOKENAUTH_PASSKEYS_ENABLED``): the views of the factors as a
    whole (``/mfa``, ``/mfa/verify``, ``/mfa/recovery-codes``)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        settings = get_state().settings
        if not (settings.totp_enabled or settings.passkeys_enabled):
            raise NotFound()
        return view(*args, **kwargs)

    return cast(F, wrapper)


#: A view that sets up a factor: a full session, or one of a user who must
#: enrol first (``TOKENAUTH_MFA = "required"``); not one waiting for its
#: second factor.
enrolment_view = login_required(mfa_enrollment=True)
#: A view that changes the factors: a full session whose last
#: authentication is within ``TOKENAUTH_REAUTHENTICATION_MAX_AGE``.
fresh_view = login_required(fresh=True)
#: A view a session waiting for its second factor may reach (and one that
#: must enrol first).
pending_view = login_required(mfa_pending=True, mfa_enrollment=True)


def has_usable_factor(state: TokenAuthState, conn: Any, user_id: str) -> bool:
    """Whether the user has a factor of a kind that is on (one a login
    asks for, and so one the session can prove): a passkey kept while
    passkeys are off counts for nothing, as at login."""
    settings = state.settings
    return assurance.has_second_factor(
        conn, user_id, totp=settings.totp_enabled, passkeys=settings.passkeys_enabled
    )


def require_to_add_factor() -> None:
    """Refuse adding a factor to a user who has one unless the session
    proved a factor, recently (see :func:`.._assurance.require_to_add_factor`):
    ``401 MFA_REQUIRED`` or ``401 REAUTHENTICATION_REQUIRED``.  For a view
    that needs it only sometimes (an enrolment by a user with a factor)."""
    assurance.require_to_add_factor(dict(current_claims))


def caller(state: TokenAuthState) -> tuple[Any, str]:
    """The caller's user and ``sub``, once the user is loaded (still there,
    active, and the token's identity).

    :raises UserNotFound: the user is gone, disabled, or someone else now.
    """
    user = load_current_user()
    if user is None:
        raise UserNotFound()
    return user, str(current_claims["sub"])


def log_unreadable(error: Exception, user_id: str) -> None:
    """A stored secret that does not decrypt: the operator's to fix (never
    the value in the log)."""
    logger.error(
        "tokenauth: the authenticator-app secret of user %s cannot be read (%s);"
        " after changing TOKENAUTH_REFRESH_SECRET run `flask tokenauth mfa rekey`",
        user_id,
        error,
    )


def complete(state: TokenAuthState, user: Any) -> Response:
    """Upgrade the caller's session by an authenticator-app or recovery
    code (``amr`` gains ``otp`` and ``mfa``, ``aal`` 2), answered as
    ``/login``."""
    return assurance.complete_factor(
        state, user, str(current_claims["sid"]), [assurance.OTP], aal=2
    )
