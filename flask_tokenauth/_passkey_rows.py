"""The rows of ``tokenauth_passkeys``: a user's passkeys, keyed by the
credential id (base64url) and owned by a ``sub``, so built-in and host users
alike have them.  No ``webauthn`` import here: listing, renaming and
removing work on the rows alone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, cast

from sqlalchemy import Connection, Row, Table, and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from ._db import as_utc
from .models import Passkey

_passkeys = cast(Table, Passkey.__table__)

#: The longest name a passkey may have, and the longest credential id and
#: public key (base64url) stored: the columns' lengths.
MAX_NAME_LENGTH = 64
MAX_ID_LENGTH = 1400
MAX_KEY_LENGTH = 2048


@dataclass(frozen=True)
class StoredPasskey:
    id: str
    user_id: str
    public_key: str
    sign_count: int
    name: str
    aaguid: str | None
    transports: list[str]
    backed_up: bool
    created_at: datetime
    last_used_at: datetime | None
    user_handle: str

    def to_json(self) -> dict[str, Any]:
        """As ``GET /passkeys`` lists it (nothing secret is stored anyway)."""
        return {
            "id": self.id,
            "name": self.name,
            "createdAt": self.created_at.isoformat(),
            "lastUsedAt": None
            if self.last_used_at is None
            else self.last_used_at.isoformat(),
            "backedUp": self.backed_up,
        }


def _stored(row: Row[Any]) -> StoredPasskey:
    return StoredPasskey(
        id=row.id,
        user_id=row.user_id,
        public_key=row.public_key,
        sign_count=row.sign_count,
        name=row.name,
        aaguid=row.aaguid,
        transports=(row.transports or "").split(),
        backed_up=bool(row.backed_up),
        created_at=as_utc(row.created_at),
        last_used_at=None if row.last_used_at is None else as_utc(row.last_used_at),
        user_handle=row.user_handle,
    )


def of_user(conn: Connection, sub: str) -> list[StoredPasskey]:
    """``sub``'s passkeys, oldest first."""
    query = (
        select(_passkeys)
        .where(_passkeys.c.user_id == sub)
        .order_by(_passkeys.c.created_at, _passkeys.c.id)
    )
    return [_stored(row) for row in conn.execute(query)]


def get(conn: Connection, passkey_id: str) -> StoredPasskey | None:
    row = conn.execute(select(_passkeys).where(_passkeys.c.id == passkey_id)).first()
    return None if row is None else _stored(row)


def insert_passkey(
    conn: Connection,
    *,
    id: str,
    user_id: str,
    public_key: str,
    sign_count: int,
    name: str,
    aaguid: str | None,
    transports: list[str],
    backed_up: bool,
    user_handle: str,
) -> StoredPasskey | None:
    """Store a new passkey; ``None`` if its credential id is taken (by this
    user or another: an id names one credential)."""
    values: dict[str, Any] = {
        "id": id,
        "user_id": user_id,
        "public_key": public_key,
        "sign_count": sign_count,
        "name": name[:MAX_NAME_LENGTH],
        "aaguid": aaguid,
        "transports": " ".join(transports)[:255] or None,
        "backed_up": backed_up,
        "created_at": datetime.now(timezone.utc),
        "last_used_at": None,
        "user_handle": user_handle,
    }
    if get(conn, id) is not None:
        return None
    try:
        with conn.begin_nested():
            conn.execute(insert(_passkeys).values(**values))
    except IntegrityError:  # a concurrent registration of the same id won
        return None
    return get(conn, id)


def record_use(
    conn: Connection, passkey_id: str, count: int, *, backed_up: bool, now: datetime
) -> bool:
    """Record a sign-in with the authenticator's counter at ``count``, if it
    went past the stored one (or both are ``0``, an authenticator that does
    not count): ``False`` if not, for a concurrent sign-in counted first."""
    counter = _passkeys.c.sign_count
    went_up = counter < count if count else counter == 0
    result = conn.execute(
        update(_passkeys)
        .where(and_(_passkeys.c.id == passkey_id, went_up))
        .values(sign_count=count, backed_up=backed_up, last_used_at=now)
    )
    return result.rowcount == 1


def rename(conn: Connection, sub: str, passkey_id: str, name: str) -> bool:
    result = conn.execute(
        update(_passkeys)
        .where(and_(_passkeys.c.id == passkey_id, _passkeys.c.user_id == sub))
        .values(name=name)
    )
    return result.rowcount == 1


def remove(conn: Connection, sub: str, passkey_id: str) -> bool:
    result = conn.execute(
        delete(_passkeys).where(
            and_(_passkeys.c.id == passkey_id, _passkeys.c.user_id == sub)
        )
    )
    return result.rowcount == 1


def remove_all(conn: Connection, sub: str) -> int:
    """Every passkey of ``sub`` (support's ``mfa reset``)."""
    return conn.execute(delete(_passkeys).where(_passkeys.c.user_id == sub)).rowcount
