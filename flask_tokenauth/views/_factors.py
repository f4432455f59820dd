"""What the TOTP and ``/mfa`` views share: who the caller is, which
factors they have, how recent their authentication must be, and the
``GET /mfa`` body.  The assurance decisions themselves (the token's
``aal``, ``auth_time``, a pending session) are :mod:`.._assurance`'s; this
module only names which of its checks each view asks for."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from .._state import TokenAuthState
from ..decorators import login_required
from ..errors import ReauthenticationRequired, UserNotFound
from ..globals import _get_user as load_current_user
from ..globals import current_claims

logger = logging.getLogger("flask_tokenauth")

F = TypeVar("F", bound=Callable[..., Any])


def enrolment_view(view: F) -> F:
    """A view that sets up a factor: a full session (not one waiting for
    its second factor)."""
    return login_required(view)


def fresh_view(view: F) -> F:
    """A view that changes the factors: a full session whose last
    authentication is within ``TOKENAUTH_REAUTHENTICATION_MAX_AGE``."""

    def checked(*args: Any, **kwargs: Any) -> Any:
        from .._state import get_state

        require_fresh(get_state())
        return view(*args, **kwargs)

    checked.__name__ = view.__name__
    checked.__doc__ = view.__doc__
    checked.__wrapped__ = view  # type: ignore[attr-defined]
    return login_required(checked)  # type: ignore[return-value]


def pending_view(view: F) -> F:
    """A view a session waiting for its second factor may reach."""
    return login_required(view)


def require_fresh(state: TokenAuthState) -> None:
    """Refuse a token whose authentication is older than
    ``TOKENAUTH_REAUTHENTICATION_MAX_AGE``: ``401
    REAUTHENTICATION_REQUIRED``, ``/reauthenticate`` renews it."""
    max_age = int(state.settings.reauthentication_max_age.total_seconds())
    at = current_claims.get("auth_time", current_claims.get("iat"))
    if not isinstance(at, (int, float)) or time.time() - at > max_age:
        raise ReauthenticationRequired(max_age=max_age)


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


def complete(state: TokenAuthState, user: Any, method: str) -> Any:
    """Upgrade the caller's session by a second factor (assurance's)."""
    raise NotImplementedError("waits for _assurance.complete_factor")
