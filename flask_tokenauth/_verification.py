"""Recording that a user's address is verified: shared by every flow that
proves it (the verification link, a password reset or an email sign-in
followed from the mailbox, an address change confirmed from the new
address) and the CLI, so that none reaches into another's module.

The store records it (its column, or ``tokenauth_email_verifications``);
the user's live sessions learn it too, so that the tokens their next
refresh issues carry ``email_verified: true`` without a query per refresh.
"""

from __future__ import annotations

from typing import Any, cast

from flask import current_app
from sqlalchemy import Connection, Table, update

from . import signals
from ._state import TokenAuthState
from .models import Session

_sessions = cast(Table, Session.__table__)


def mark_verified(
    state: TokenAuthState, conn: Connection, user: Any, email: str
) -> None:
    """Record in ``conn`` (the caller's transaction) that ``user``'s address
    ``email`` is verified; the caller sends :func:`announce` after its
    commit."""
    store = state.user_store
    store.set_email_verified(user, email, conn)
    conn.execute(
        update(_sessions)
        .where(
            _sessions.c.user_id == store.sub_of(user),
            _sessions.c.revoked_at.is_(None),
        )
        .values(email_verified=True)
    )


def announce(state: TokenAuthState, user: Any, email: str) -> None:
    """Send :data:`~.signals.email_verified`."""
    store = state.user_store
    signals.email_verified.send(
        current_app._get_current_object(),  # type: ignore[attr-defined]
        user_id=store.user_id(store.sub_of(user)),
        email=email,
    )
