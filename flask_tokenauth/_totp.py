"""Authenticator-app codes (TOTP, RFC 6238) with ``pyotp``: enrol, confirm,
verify, remove; one row of ``tokenauth_totp_secrets`` per user.

Codes are 6 digits of 30-second steps, accepted for the current step and
one step either side (a clock a little off, a code typed as it changed).
**A code is never accepted twice**: the step it matched is stored in
``last_step``, and a code is accepted only for a step after it, by one
conditional ``UPDATE`` (``... WHERE last_step IS NULL OR last_step <
:step``): of two requests with the same code at the same moment, on
PostgreSQL as on SQLite, exactly one updates the row.  So a code seen over
a shoulder, or replayed from a log, is worth nothing once used, and a code
older than the last one used is refused too.

The secret is stored encrypted (:mod:`._factor_crypto`); every ``UPDATE``
also names the encrypted value it checked, so a code of a secret that a
concurrent enrolment just replaced confirms nothing.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, cast

import pyotp
import segno
from sqlalchemy import Connection, Table, and_, delete, or_, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from . import _factor_crypto as crypto
from ._config import Settings
from ._db import as_utc
from .models import TotpSecret

_secrets = cast(Table, TotpSecret.__table__)

#: RFC 6238's defaults, which every authenticator app supports.
STEP_SECONDS = 30
DIGITS = 6
#: Steps accepted either side of the current one.
WINDOW = 1
#: Separators a user may type inside a code (``123 456``).
_SEPARATORS = str.maketrans("", "", " -\u00a0")


def clock() -> float:
    """Now, in seconds (a test replaces it to choose the step)."""
    return time.time()


def current_step(now: float | None = None) -> int:
    return int((clock() if now is None else now) // STEP_SECONDS)


class AlreadyEnabled(Exception):
    """The user has a confirmed secret: remove it before enrolling again."""


class NotEnrolled(Exception):
    """No secret (or none waiting for confirmation) to act on."""


@dataclass(frozen=True)
class Status:
    """A user's TOTP, as ``GET /mfa`` shows it."""

    confirmed_at: datetime | None

    @property
    def enabled(self) -> bool:
        return self.confirmed_at is not None


def normalize(code: str) -> str | None:
    """The code's digits, or ``None`` when it cannot be a code."""
    code = code.translate(_SEPARATORS)
    if len(code) != DIGITS or not code.isascii() or not code.isdigit():
        return None
    return code


def new_secret() -> str:
    """160 random bits in base32 (RFC 4226's recommended length)."""
    return pyotp.random_base32(32)


def issuer(settings: Settings, app_name: str) -> str:
    """``TOKENAUTH_TOTP_ISSUER``, else the first service name, else the
    app's name: what the authenticator app shows next to the account."""
    if settings.totp_issuer:
        return settings.totp_issuer
    return settings.service_name[0] if settings.service_name else app_name


def provisioning_uri(secret: str, account: str, issuer_name: str) -> str:
    """The ``otpauth://totp/...`` URI an authenticator app scans."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=account, issuer_name=issuer_name
    )


def qr_svg(uri: str) -> str:
    """The URI as a QR code, an inline SVG element (``segno``)."""
    return str(segno.make(uri, error="m", micro=False).svg_inline(scale=4))


def matched_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The latest step within the window whose code is ``code``, or
    ``None``.  Every candidate is compared (in constant time), so the time
    taken does not tell which step matched."""
    otp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    step = current_step(now)
    found = None
    for candidate in range(step - WINDOW, step + WINDOW + 1):
        if hmac.compare_digest(otp.generate_otp(candidate), code):
            found = candidate
    return found


def _now() -> datetime:
    return datetime.now(timezone.utc)


def status(conn: Connection, user_id: str) -> Status | None:
    """The user's TOTP, or ``None`` if they never began an enrolment."""
    row = conn.execute(
        select(_secrets.c.confirmed_at).where(_secrets.c.user_id == user_id)
    ).first()
    if row is None:
        return None
    return Status(None if row.confirmed_at is None else as_utc(row.confirmed_at))


def is_enabled(conn: Connection, user_id: str) -> bool:
    found = status(conn, user_id)
    return found is not None and found.enabled


def begin(settings: Settings, conn: Connection, user_id: str) -> str:
    """Store a new secret, unconfirmed, for ``user_id`` and return it (in
    clear, for the enrolment answer only).  A secret waiting for
    confirmation is replaced; one statement (an upsert that leaves a
    confirmed row alone), so concurrent enrolments cannot collide.

    :raises AlreadyEnabled: the user has a confirmed secret.
    """
    secret = new_secret()
    stored = crypto.encrypt(settings.refresh_secret, secret, user_id)
    # The dialect's own insert, imported here (as _sessions does): the
    # PostgreSQL dialect costs an app on SQLite an import for nothing.
    insert = sqlite_insert
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        insert = postgresql_insert  # type: ignore[assignment]
    statement = insert(_secrets).values(
        user_id=user_id, secret=stored, created_at=_now()
    )
    statement = statement.on_conflict_do_update(
        index_elements=[_secrets.c.user_id],
        set_={
            "secret": statement.excluded.secret,
            "created_at": statement.excluded.created_at,
            "last_step": None,
        },
        where=_secrets.c.confirmed_at.is_(None),
    )
    if not conn.execute(statement).rowcount:
        raise AlreadyEnabled()
    return secret


def _read(
    settings: Settings, conn: Connection, user_id: str, confirmed: bool
) -> tuple[str, str] | None:
    """The stored value and the secret of the user's row in that state."""
    condition = (
        _secrets.c.confirmed_at.is_not(None)
        if confirmed
        else _secrets.c.confirmed_at.is_(None)
    )
    row = conn.execute(
        select(_secrets.c.secret).where(_secrets.c.user_id == user_id, condition)
    ).first()
    if row is None:
        return None
    return row.secret, crypto.decrypt(settings.refresh_secret, row.secret, user_id)


def confirm(settings: Settings, conn: Connection, user_id: str, code: str) -> bool:
    """Confirm the waiting secret with a first code of it.  ``False``: the
    code is wrong.

    :raises NotEnrolled: no secret waits for confirmation.
    :raises _factor_crypto.Unreadable: the stored value does not decrypt.
    """
    return _accept(settings, conn, user_id, code, confirmed=False)


def verify(settings: Settings, conn: Connection, user_id: str, code: str) -> bool:
    """Accept ``code`` for the user's confirmed secret, once: ``True`` if it
    matched a step after the last one used, which it now is.

    :raises NotEnrolled: the user has no confirmed secret.
    :raises _factor_crypto.Unreadable: the stored value does not decrypt.
    """
    return _accept(settings, conn, user_id, code, confirmed=True)


def _accept(
    settings: Settings, conn: Connection, user_id: str, code: str, *, confirmed: bool
) -> bool:
    """Accept ``code`` for the user's secret in the state ``confirmed``
    says, in one conditional ``UPDATE`` (two requests with one code cannot
    both win): a waiting secret becomes confirmed at the code's step, a
    confirmed one accepts only a step after its last."""
    found = _read(settings, conn, user_id, confirmed=confirmed)
    if found is None:
        raise NotEnrolled()
    stored, secret = found
    digits = normalize(code)
    step = None if digits is None else matched_step(secret, digits)
    if step is None:
        return False
    row = and_(_secrets.c.user_id == user_id, _secrets.c.secret == stored)
    if confirmed:
        state = and_(
            _secrets.c.confirmed_at.is_not(None),
            or_(_secrets.c.last_step.is_(None), _secrets.c.last_step < step),
        )
        values: dict[str, Any] = {"last_step": step}
    else:
        state = _secrets.c.confirmed_at.is_(None)
        values = {"confirmed_at": _now(), "last_step": step}
    return bool(
        conn.execute(update(_secrets).where(row, state).values(**values)).rowcount
    )


def remove(conn: Connection, user_id: str) -> bool:
    """Delete the user's secret (confirmed or not); ``True`` if there was a
    confirmed one."""
    enabled = is_enabled(conn, user_id)
    conn.execute(delete(_secrets).where(_secrets.c.user_id == user_id))
    return enabled


def rekey(conn: Connection, old_secret: bytes, new_secret_: bytes) -> tuple[int, int]:
    """Re-encrypt every row under ``old_secret``'s key with
    ``new_secret_``'s: ``(re-encrypted, left)`` (rows of neither key, or
    unreadable, are left as they are)."""
    old_id = crypto.key_id(crypto.derive_key(old_secret))
    new_id = crypto.key_id(crypto.derive_key(new_secret_))
    done = left = 0
    for row in conn.execute(select(_secrets.c.user_id, _secrets.c.secret)).all():
        kid = crypto.key_id_of(row.secret)
        if kid == new_id:
            continue
        try:
            if kid != old_id:
                raise crypto.KeyUnknown()
            value = crypto.reencrypt(old_secret, new_secret_, row.secret, row.user_id)
        except crypto.Unreadable:
            left += 1
            continue
        conn.execute(
            update(_secrets)
            .where(_secrets.c.user_id == row.user_id, _secrets.c.secret == row.secret)
            .values(secret=value)
        )
        done += 1
    return done, left
