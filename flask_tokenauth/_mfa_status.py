"""Which second factors a user has, as ``GET /mfa`` and ``flask tokenauth
mfa list`` show them, and removing all of them (``mfa reset``).

Reads the factor tables (authenticator app, passkeys, recovery codes) by
their models only: the flows that write them stay modules of their own.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Connection, Table, delete, func, select

from . import _recovery_codes as recovery
from . import _totp as totp
from .models import Passkey

_passkeys = cast(Table, Passkey.__table__)


def passkey_count(conn: Connection, user_id: str) -> int:
    return int(
        conn.execute(
            select(func.count())
            .select_from(_passkeys)
            .where(_passkeys.c.user_id == user_id)
        ).scalar_one()
    )


def has_factor(conn: Connection, user_id: str) -> bool:
    """Whether the user has a confirmed authenticator app or a passkey."""
    return totp.is_enabled(conn, user_id) or passkey_count(conn, user_id) > 0


def summary(conn: Connection, user_id: str) -> dict[str, Any]:
    """``{totp: {enabled, confirmedAt}, passkeys, recoveryCodesLeft}``."""
    found = totp.status(conn, user_id)
    confirmed = None if found is None else found.confirmed_at
    return {
        "totp": {
            "enabled": confirmed is not None,
            "confirmedAt": None if confirmed is None else confirmed.isoformat(),
        },
        "passkeys": passkey_count(conn, user_id),
        "recoveryCodesLeft": recovery.remaining(conn, user_id),
    }


def remove_all(conn: Connection, user_id: str) -> dict[str, int]:
    """Delete every factor of the user, in the caller's transaction: how
    many of each there were."""
    return {
        "totp": int(totp.remove(conn, user_id)),
        "passkeys": int(
            conn.execute(
                delete(_passkeys).where(_passkeys.c.user_id == user_id)
            ).rowcount
        ),
        "recoveryCodes": recovery.delete_all(conn, user_id),
    }
