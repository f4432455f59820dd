"""A host user deleted or disabled through the ORM loses its sessions: the
ORM events of a :class:`~._sqlalchemy_store.SQLAlchemyUserStore`'s model.

The revocation runs once the host's transaction has committed, in a
transaction of ours (told to Redis too), so that with every revocation store
the user's access tokens stop at their next request; a rolled-back deletion
ends nothing.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import object_session

from ._bulk_revocation import revoke_on_apps, within

#: ``session.info`` key of the users whose sessions end at commit.
_PENDING = "tokenauth_revoke_at_commit"


class RevokeOnOrmChange:
    """Listens to one model's ``after_delete`` (and ``after_update`` of its
    ``is_active`` column) and ends the user's sessions on every app the
    store serves.

    :param sub_of: the store's ``sub_of(user)``.
    :param is_active: the name of the model's boolean column, or ``None``.
    """

    def __init__(self, sub_of: Callable[[Any], str], is_active: str | None) -> None:
        self._sub_of = sub_of
        self._is_active = is_active
        # Weak: an app dropped (a test suite makes many) is not kept alive.
        self.apps: weakref.WeakSet[Any] = weakref.WeakSet()
        self._listening = False

    def attach(self, app: Any, model: type[Any]) -> None:
        """Serve ``app`` too; the listeners are registered once."""
        self.apps.add(app)
        if self._listening:
            return
        self._listening = True
        event.listen(model, "after_delete", self._on_delete)
        if self._is_active is not None:
            event.listen(model, "after_update", self._on_update)

    def _on_delete(self, mapper: Any, connection: Any, target: Any) -> None:
        self._revoke_after_commit(target)

    def _on_update(self, mapper: Any, connection: Any, target: Any) -> None:
        assert self._is_active is not None
        history = sa_inspect(target).attrs[self._is_active].history
        if history.has_changes() and not getattr(target, self._is_active):
            self._revoke_after_commit(target)

    def _revoke_after_commit(self, target: Any) -> None:
        session = object_session(target)
        try:
            sub = self._sub_of(target)
        except ValueError:  # an id no token can name: it has no sessions
            return
        if session is None:  # pragma: no cover - a flush always has one
            self.revoke([sub])
            return
        # With the (innermost) transaction of the flush: a savepoint rolled
        # back later forgets what happened inside it, not what came before.
        transaction = session.get_nested_transaction() or session.get_transaction()
        pending: list[tuple[Any, str]] = session.info.setdefault(_PENDING, [])
        pending.append((transaction, sub))
        if not event.contains(session, "after_commit", self._after_commit):
            # Kept on the session (removing a listener while its event runs
            # is not allowed); they do nothing while nothing is pending.
            event.listen(session, "after_commit", self._after_commit)
            event.listen(session, "after_soft_rollback", self._after_soft_rollback)

    def _after_commit(self, session: OrmSession) -> None:
        pending = session.info.pop(_PENDING, None)
        if pending:
            self.revoke(sorted({sub for _, sub in pending}))

    def _after_soft_rollback(self, session: OrmSession, previous: Any) -> None:
        # Not after_rollback: it fires for a savepoint too, and dropped all.
        pending = session.info.get(_PENDING)
        if pending:
            pending[:] = [e for e in pending if not within(e[0], previous)]

    def revoke(self, subs: list[str]) -> None:
        """End every session of ``subs`` on every app this store serves
        (errors logged, not raised: see :func:`._bulk_revocation.revoke_on_apps`)."""
        revoke_on_apps(self.apps, subs)
