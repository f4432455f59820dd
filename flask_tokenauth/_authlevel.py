"""How a session was authenticated: its RFC 8176 ``amr`` values, its NIST
``aal``, its ``auth_time``, and whether it may only reach the second-factor
views (a *restriction*).

Held on the session row and carried by every access token of the session
as claims, so that ``@login_required`` decides from the token alone (no
query): the rotation reads the row anyway, and a refresh carries the level
without a statement more.  The views and helpers that change it are in
:mod:`._assurance`; this module is a leaf, read by the token issuer, the
refresh and the decorators.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, cast

from sqlalchemy import Connection, Table, exists, or_, select

from .models import Passkey, TotpSecret

#: RFC 8176 values (and ``email``, a sign-in by a mailed link or code,
#: issue 17: one factor, as ``pwd`` is).
PWD = "pwd"
OTP = "otp"
HWK = "hwk"
SWK = "swk"
USER = "user"
MFA = "mfa"
EMAIL = "email"

#: The claims of every access token (reserved: an app's loader cannot set them).
AMR_CLAIM = "amr"
AAL_CLAIM = "aal"
AUTH_TIME_CLAIM = "auth_time"
#: Present only on a restricted token: :data:`PENDING` or :data:`ENROLL`.
#: One claim for both, so an ordinary protected request pays one ``in``.
RESTRICTION_CLAIM = "mfa_state"
#: Password (or email) done, the second factor not yet: only the views
#: that verify a factor (``@login_required(mfa_pending=True)``).
PENDING = "pending"
#: ``TOKENAUTH_MFA = "required"`` and no factor enrolled yet: only the
#: enrolment views (``@login_required(mfa_enrollment=True)``).
ENROLL = "enroll"

_totp = cast(Table, TotpSecret.__table__)
_passkeys = cast(Table, Passkey.__table__)


@dataclass(frozen=True)
class Assurance:
    """The authentication of one session, as its row and tokens carry it."""

    amr: tuple[str, ...] = (PWD,)
    aal: int = 1
    #: Seconds since the epoch (``auth_time`` of OpenID Connect).
    auth_time: int = 0
    #: ``None``, :data:`PENDING` or :data:`ENROLL`.
    restriction: str | None = None

    def claims(self) -> dict[str, Any]:
        """The access token's claims."""
        claims: dict[str, Any] = {
            AMR_CLAIM: list(self.amr),
            AAL_CLAIM: self.aal,
            AUTH_TIME_CLAIM: self.auth_time,
        }
        if self.restriction is not None:
            claims[RESTRICTION_CLAIM] = self.restriction
        return claims

    def row(self) -> dict[str, Any]:
        """The session row's columns."""
        return {
            "amr": " ".join(self.amr),
            "aal": self.aal,
            "auth_time": datetime.fromtimestamp(self.auth_time, timezone.utc),
            "mfa_state": self.restriction,
        }

    def upgraded(self, methods: Iterable[str], aal: int, now: int) -> Assurance:
        """The level after a second factor: ``amr`` gains the methods and
        ``mfa``, ``aal`` at least ``aal``, authenticated ``now``, no longer
        restricted."""
        return Assurance(
            merged(self.amr, [*methods, MFA]), max(self.aal, aal), now, None
        )


def merged(amr: Sequence[str], more: Iterable[str]) -> tuple[str, ...]:
    """``amr`` and then ``more``, each value once, in order."""
    seen = list(amr)
    for value in more:
        if value not in seen:
            seen.append(value)
    return tuple(seen)


def now_seconds() -> int:
    return int(time.time())


def of_row(
    amr: str | None,
    aal: int | None,
    auth_time: datetime | None,
    restriction: str | None,
    created_at: datetime | None,
) -> Assurance:
    """A session row's level.  A session of before these columns
    (``NULL``) was a password login at ``created_at``."""
    when = auth_time if auth_time is not None else created_at
    if when is not None and when.tzinfo is None:  # SQLite gives naive UTC
        when = when.replace(tzinfo=timezone.utc)
    return Assurance(
        tuple(amr.split()) if amr else (PWD,),
        aal or 1,
        int(when.timestamp()) if when is not None else now_seconds(),
        restriction,
    )


def has_second_factor(
    conn: Connection, sub: str, *, totp: bool = True, passkeys: bool = True
) -> bool:
    """Whether the user ``sub`` has a second factor: a confirmed TOTP
    secret or a passkey (those of a kind switched off do not count).
    One query; asked when a session starts, never per request."""
    kinds = []
    if totp:
        kinds.append(
            exists().where(_totp.c.user_id == sub, _totp.c.confirmed_at.is_not(None))
        )
    if passkeys:
        kinds.append(exists().where(_passkeys.c.user_id == sub))
    if not kinds:
        return False
    return bool(conn.execute(select(or_(*kinds))).scalar())


def initial(
    settings: Any,
    conn: Connection,
    sub: str,
    methods: Sequence[str],
    aal: int = 1,
    now: int | None = None,
) -> Assurance:
    """The level of a session that starts now, signed in by ``methods``.

    Below ``aal`` 2, a user with a second factor gets a :data:`PENDING`
    session (it must complete the factor); with ``TOKENAUTH_MFA =
    "required"``, a user without one gets an :data:`ENROLL` session.  One
    query, only below ``aal`` 2 and only if a factor kind is on.

    :param settings: the app's :class:`~._config.Settings`.
    """
    restriction = None
    if aal < 2:
        kinds = {"totp": settings.totp_enabled, "passkeys": settings.passkeys_enabled}
        if any(kinds.values()) and has_second_factor(conn, sub, **kinds):
            restriction = PENDING
        elif settings.mfa == "required":
            restriction = ENROLL
    return Assurance(
        tuple(methods), aal, now_seconds() if now is None else now, restriction
    )
