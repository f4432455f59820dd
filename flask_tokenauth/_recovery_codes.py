"""Recovery codes: ten single-use codes a user keeps on paper for the day
their authenticator is lost; one row of ``tokenauth_recovery_codes`` each.

A code is 10 characters of lower-case base32 (50 random bits), shown as
``xxxxx-xxxxx``; typed back with or without the hyphen, spaces or capitals.
Only an HMAC-SHA256 of it is stored, under ``TOKENAUTH_REFRESH_SECRET``
and bound to the user's ``sub``: a database dump holds nothing a code can
be rebuilt from, and one user's code is no code of another's.  A code is
spent by one conditional ``UPDATE`` (``... WHERE used_at IS NULL``), so two
concurrent requests cannot both use it.  Generating codes deletes the old
ones in the same transaction: old codes die.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, cast

from sqlalchemy import Connection, Row, Table, delete, func, insert, select, update

from ._config import Settings
from .models import RecoveryCode

_codes = cast(Table, RecoveryCode.__table__)

#: Codes per generation.
COUNT = 10
#: RFC 4648's base32 alphabet, lower-case (no 0/1/8/9 to misread).
ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
#: Characters per code: 10 x 5 bits = 50 bits.
LENGTH = 10
GROUP = 5
_SEPARATORS = str.maketrans("", "", " -\u00a0")
_CONTEXT = b"flask_tokenauth recovery code\x00"


def _new_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    return "-".join(raw[i : i + GROUP] for i in range(0, LENGTH, GROUP))


def normalize(code: str) -> str | None:
    """The code's characters (no separators, lower case), or ``None`` when
    it cannot be a code."""
    code = code.translate(_SEPARATORS).lower()
    if len(code) != LENGTH or any(c not in ALPHABET for c in code):
        return None
    return code


def _hash(settings: Settings, user_id: str, code: str) -> str:
    message = _CONTEXT + user_id.encode() + b"\x00" + code.encode()
    return hmac.new(settings.refresh_secret, message, hashlib.sha256).hexdigest()


def generate(settings: Settings, conn: Connection, user_id: str) -> list[str]:
    """Replace the user's codes with :data:`COUNT` new ones, returned in
    clear (shown once, never stored)."""
    codes = [_new_code() for _ in range(COUNT)]
    now = datetime.now(timezone.utc)
    conn.execute(delete(_codes).where(_codes.c.user_id == user_id))
    conn.execute(
        insert(_codes),
        [
            {
                "user_id": user_id,
                "code_hash": _hash(settings, user_id, normalize(code) or ""),
                "created_at": now,
            }
            for code in codes
        ],
    )
    return codes


def remaining(conn: Connection, user_id: str) -> int:
    """How many of the user's codes are unused."""
    return int(
        conn.execute(
            select(func.count())
            .select_from(_codes)
            .where(_codes.c.user_id == user_id, _codes.c.used_at.is_(None))
        ).scalar_one()
    )


def use(settings: Settings, conn: Connection, user_id: str, code: str) -> int | None:
    """Spend ``code`` of ``user_id``: the number of codes left after it, or
    ``None`` if it is not an unused code of theirs.  Every unused code of
    the user is compared (in constant time), whichever matches."""
    typed = normalize(code)
    expected = _hash(settings, user_id, typed or "")
    rows = conn.execute(
        select(_codes.c.id, _codes.c.code_hash).where(
            _codes.c.user_id == user_id, _codes.c.used_at.is_(None)
        )
    ).all()
    found = _match(rows, expected)
    if typed is None or found is None:
        return None
    spent = conn.execute(
        update(_codes)
        .where(_codes.c.id == found, _codes.c.used_at.is_(None))
        .values(used_at=datetime.now(timezone.utc))
    ).rowcount
    if not spent:
        return None  # a concurrent request used it first
    return remaining(conn, user_id)


def _match(rows: Sequence[Row[Any, Any]], expected: str) -> int | None:
    """The id of the row whose hash is ``expected``; every row compared."""
    found = None
    for row in rows:
        if hmac.compare_digest(row.code_hash, expected):
            found = int(row.id)
    return found


def delete_all(conn: Connection, user_id: str) -> int:
    """Delete the user's codes; how many there were."""
    return int(conn.execute(delete(_codes).where(_codes.c.user_id == user_id)).rowcount)
