"""What ``@login_required(aal=..., fresh=...)`` asks of a token beyond
being valid: a level (``aal`` claim) and a recent authentication
(``auth_time`` claim), both read from the claims alone.

Views without these options never call anything here: an ordinary
protected request costs what it did before the second factor existed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import current_app

from ._authlevel import AAL_CLAIM, AUTH_TIME_CLAIM
from .errors import MfaRequired, ReauthenticationRequired

Check = Callable[[dict[str, Any] | None], None]


def seconds(max_age: bool | int | float | timedelta) -> int | None:
    """``fresh=``'s value in seconds; ``None`` for ``True`` (the app's
    ``TOKENAUTH_REAUTHENTICATION_MAX_AGE``, read per request).

    :raises ValueError: a negative age, or ``False`` (say ``None``).
    """
    if max_age is True:
        return None
    if max_age is False:
        raise ValueError("fresh=False: leave fresh out instead")
    value = max_age.total_seconds() if isinstance(max_age, timedelta) else max_age
    if value < 0:
        raise ValueError(f"fresh/max_age must not be negative, not {max_age!r}")
    return int(value)


def configured_max_age() -> int:
    """``TOKENAUTH_REAUTHENTICATION_MAX_AGE`` of the current app, in seconds."""
    state = current_app.extensions["tokenauth"]
    return int(state.settings.reauthentication_max_age.total_seconds())


def require_fresh(claims: dict[str, Any], max_age: int | None = None) -> None:
    """Refuse ``claims`` whose ``auth_time`` is more than ``max_age``
    seconds old (default: ``TOKENAUTH_REAUTHENTICATION_MAX_AGE``) with
    ``401 REAUTHENTICATION_REQUIRED``.  For a view that decides in its
    body (the factor removal, the recovery codes' regeneration).

    A token without ``auth_time`` (issued before the claim existed) is
    not fresh.
    """
    if max_age is None:
        max_age = configured_max_age()
    auth_time = claims.get(AUTH_TIME_CLAIM)
    if type(auth_time) is not int or time.time() - auth_time > max_age:
        raise ReauthenticationRequired(max_age=max_age)


def require_aal(claims: dict[str, Any], aal: int) -> None:
    """Refuse ``claims`` of an ``aal`` lower than ``aal`` (a token without
    the claim is ``aal`` 1) with ``401 MFA_REQUIRED``."""
    level = claims.get(AAL_CLAIM, 1)
    if type(level) is not int or level < aal:
        raise MfaRequired()


def require_to_add_factor(claims: dict[str, Any]) -> None:
    """Refuse adding a factor (an authenticator app, a passkey) for a user
    who has one already, unless the session proved a factor (``aal`` 2:
    ``401 MFA_REQUIRED``) and recently (``401 REAUTHENTICATION_REQUIRED``).

    A recent password alone is not enough: a session that started before
    the user's first factor (or under ``TOKENAUTH_MFA = "required"``
    before it was enrolled elsewhere) is ``aal`` 1 and never restricted,
    and ``/reauthenticate`` with the password keeps it fresh; adding its
    own authenticator would turn a stolen password into a second factor.
    """
    require_aal(claims, 2)
    require_fresh(claims)


def require_to_change_factors(claims: dict[str, Any]) -> None:
    """Refuse removing a factor, or replacing the recovery codes, unless
    the session proved a factor (``aal`` 2: ``401 MFA_REQUIRED``); the
    view asks a fresh authentication too.  Else a session of the password
    alone (started before the user's first factor) would strip the factor
    that now guards every login, or take the recovery codes for itself."""
    require_aal(claims, 2)


def requiring(
    aal: int | None, fresh: bool | int | float | timedelta | None
) -> Check | None:
    """The check of ``@login_required(aal=, fresh=)``, or ``None`` (no
    option: nothing to check).  Checked in that order: a step-up is asked
    only of a session of the level wanted.

    :raises ValueError: at decoration time, for a bad value.
    """
    if aal is not None and (type(aal) is not int or not 1 <= aal <= 3):
        raise ValueError(f"aal must be 1, 2 or 3, not {aal!r}")
    if aal is None and fresh is None:
        return None
    age = None if fresh is None else seconds(fresh)

    def check(claims: dict[str, Any] | None) -> None:
        if claims is None:  # an optional view without a token
            return
        if aal is not None:
            require_aal(claims, aal)
        if fresh is not None:
            require_fresh(claims, age)

    return check
