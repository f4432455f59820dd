"""ORM bulk statements that remove or disable users end their sessions.

The unit of work's ``after_delete``/``after_update`` events see only the
objects a flush writes: ``session.execute(delete(User).where(...))``,
``session.execute(update(User).values(active=False))`` and the legacy
``Query.delete()``/``Query.update()`` run one statement with no object in
hand and fire neither.  They do go through the session's
``do_orm_execute`` event, where this module, for each user model a store
has registered with :func:`watch`:

* selects the primary keys the statement's WHERE clause matches, before the
  statement runs, in its transaction (``FOR UPDATE`` on PostgreSQL, so that
  no other transaction changes those rows in between);
* runs the statement itself (its result is the caller's, untouched);
* for an UPDATE, keeps those of the rows that it left inactive (an UPDATE
  that does not set the ``is_active`` column is not looked at: no query);
* and, once the session commits, ends every session of those users with a
  cutoff, as the ORM events do (nothing if it rolls back, or if the
  savepoint the statement ran in does); for users *deleted*, also removes
  their second factors (authenticator app, passkeys, recovery codes): a
  host's table may give the next user the same id, who must not inherit
  them (a disabled user keeps theirs).

The unit of work's own deletes and deactivations (``session.delete(user)``,
``user.active = False``, then a flush) are watched here too, for a store that
asks (``objects=True``): ``after_delete`` and, with an ``is_active`` column,
``after_update``.  One mechanism for both, so that a statement and an object
are revoked at the same commit and forgotten with the same savepoint.

Not seen: SQL that does not go through an ORM session's ``execute`` (raw
SQL, ``text()``, a Core connection, another program).  The next refresh
and :data:`~flask_tokenauth.current_user` still find such a user gone or
disabled; see docs/revocation.md.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, event, false, func, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import ORMExecuteState, Session, object_session

logger = logging.getLogger("flask_tokenauth")

#: ``Session.info`` key: the users to revoke at commit, per watch.
_PENDING = "tokenauth_bulk_revoke_at_commit"

#: Ends the sessions of some ``sub``s; may return the session ids revoked.
Revoke = Callable[[list[str]], "list[str] | None"]
#: Tells a store's revocation stores of sessions revoked by another's.
Tell = Callable[[list[str]], None]
#: Removes what the library keeps of deleted users (their second factors).
Forget = Callable[[list[str]], None]
ToSub = Callable[[Any], str]


@dataclass(eq=False)
class _Watch:
    """One user model of one store."""

    model: type[Any]
    pk: Any
    active: Any | None
    #: Weak where they are bound methods: a store (and its apps) that is
    #: dropped is not kept alive, and its watch is then forgotten.
    _to_sub: Callable[[], ToSub | None]
    _revoke: Callable[[], Revoke | None]
    _tell: Callable[[], Tell | None]
    _forget: Callable[[], Forget | None]
    #: The model's table: a Core statement run through a session names the
    #: ``Table`` object itself (another model's table of the same name, on
    #: another ``MetaData``, is not this one).
    table: Any = None
    #: Also objects deleted by the unit of work (see :func:`watch`).
    objects: bool = False

    def alive(self) -> bool:
        return self._to_sub() is not None and self._revoke() is not None

    def subs(self, keys: Iterable[Any]) -> set[str]:
        """The ``sub`` of each key; a key no token can name (no ``sub`` of
        the store) has no sessions, and never breaks the host's statement."""
        to_sub = self._to_sub()
        subs: set[str] = set()
        if to_sub is None:
            return subs
        for key in keys:
            try:
                subs.add(to_sub(key))
            except ValueError:
                continue
        return subs

    def revoke(self, subs: list[str]) -> list[str] | None:
        revoke = self._revoke()
        return None if revoke is None else revoke(subs)

    def forget(self, subs: list[str]) -> None:
        forget = self._forget()
        if forget is not None:
            forget(subs)

    def tell(self, session_ids: list[str]) -> None:
        tell = self._tell()
        if tell is not None:
            tell(session_ids)


_watches: list[_Watch] = []


def _weak(function: Callable[..., Any]) -> Callable[[], Any]:
    if hasattr(function, "__self__"):
        return weakref.WeakMethod(function)
    return lambda: function


def watch(
    model: type[Any],
    *,
    to_sub: ToSub,
    revoke: Revoke,
    active: str | None = None,
    objects: bool = False,
    tell: Tell | None = None,
    forget: Forget | None = None,
) -> None:
    """End the sessions of the users of ``model`` that an ORM bulk DELETE
    removes, or (with ``active``, the name of a boolean column) that an ORM
    bulk UPDATE leaves inactive, once the session commits.

    :param to_sub: the ``sub`` of a primary-key value.
    :param revoke: ends every session of the given ``sub``\\ s (called
        after the commit; it logs its own errors).
    :param objects: also for an object deleted by the unit of work
        (``session.delete(user)``), for a store without its own hook.
    :param tell: tells the store's revocation stores of sessions revoked
        through another store (see :func:`_after_commit`).
    :param forget: removes what is kept of the given deleted ``sub``\\ s
        (called after the commit, after ``revoke``; it logs its own errors).
    """
    mapper = sa_inspect(model)
    (pk,) = mapper.primary_key
    table = pk.table
    _watches[:] = [w for w in _watches if w.alive()]
    w = _Watch(
        model=model,
        pk=pk,
        active=None if active is None else mapper.columns[active],
        _to_sub=_weak(to_sub),
        _revoke=_weak(revoke),
        _tell=(lambda: None) if tell is None else _weak(tell),
        _forget=(lambda: None) if forget is None else _weak(forget),
        table=table,
        objects=objects,
    )
    _watches.append(w)
    if objects and not event.contains(model, "after_delete", _on_delete):
        event.listen(model, "after_delete", _on_delete)
    if objects and active and not event.contains(model, "after_update", _on_update):
        event.listen(model, "after_update", _on_update)
    if not event.contains(Session, "do_orm_execute", _on_execute):
        event.listen(Session, "do_orm_execute", _on_execute)
        event.listen(Session, "after_commit", _after_commit)
        event.listen(Session, "after_soft_rollback", _after_soft_rollback)


def _on_delete(mapper: Any, connection: Any, target: Any) -> None:
    """A ``session.delete(user)`` flushed: revoke at commit, for the
    watches that asked for objects."""
    session = object_session(target)
    if session is None:  # pragma: no cover - a flush always has one
        return
    for w in _watches:
        if w.objects and w.alive() and mapper.isa(sa_inspect(w.model)):
            key = getattr(target, mapper.get_property_by_column(w.pk).key)
            _pend(session, w, w.subs([key]), deleted=True)


def _on_update(mapper: Any, connection: Any, target: Any) -> None:
    """A user object flushed with its ``is_active`` column turned false (or
    NULL, inactive as the store reads it): revoke at commit, for the
    watches that asked for objects."""
    session = object_session(target)
    if session is None:  # pragma: no cover - a flush always has one
        return
    state = sa_inspect(target)
    for w in _watches:
        if not (w.objects and w.active is not None and w.alive()):
            continue
        if not mapper.isa(sa_inspect(w.model)):
            continue
        name = _attribute(w, w.active)
        if state.attrs[name].history.has_changes() and not getattr(target, name):
            key = getattr(target, mapper.get_property_by_column(w.pk).key)
            _pend(session, w, w.subs([key]))


def _target(orm_state: ORMExecuteState) -> Iterable[_Watch]:
    """The watches whose table the bulk statement writes."""
    mapper = orm_state.bind_mapper
    table = getattr(orm_state.statement, "table", None)
    for w in _watches:
        if not w.alive():
            continue
        if mapper is None:
            if table is not None and table is w.table:
                yield w
        elif mapper.isa(sa_inspect(w.model)):
            yield w


def _sets_active(orm_state: ORMExecuteState, w: _Watch) -> bool:
    """Whether an UPDATE writes the watch's ``is_active`` column."""
    if w.active is None:
        return False
    statement: Any = orm_state.statement
    written: set[str] = set()
    # Not public API (SQLAlchemy has none for this): the SET clause as
    # ``values()`` stored it, keyed by column (or name); 1.4 to 2.1.
    values = getattr(statement, "_values", None) or {}
    ordered = getattr(statement, "_ordered_values", None) or ()
    for key in [*values, *(key for key, _ in ordered)]:
        written.add(getattr(key, "key", key))
    for row in _parameter_rows(orm_state):
        written.update(row)
    return bool(written & {w.active.key, _attribute(w, w.active)})


def _attribute(w: _Watch, column: Any) -> str:
    """The mapped attribute name of ``column`` (it may differ from the
    column's name)."""
    return str(sa_inspect(w.model).get_property_by_column(column).key)


def _parameter_rows(orm_state: ORMExecuteState) -> list[dict[str, Any]]:
    """The rows of an ORM bulk UPDATE by primary key
    (``session.execute(update(User), [{...}, ...])``)."""
    parameters = orm_state.parameters
    if isinstance(parameters, list):
        return [dict(row) for row in parameters]
    return []


def _keys_matched(orm_state: ORMExecuteState, w: _Watch) -> list[Any]:
    """The primary keys of the rows the statement is about to write."""
    rows = _parameter_rows(orm_state)
    if rows:  # by primary key: the keys are in the rows
        name = _attribute(w, w.pk)
        return [row[name] for row in rows if name in row]
    statement: Any = orm_state.statement
    # The key as the statement's own table has it (the ORM's table is
    # annotated: the model's column would be another FROM).
    pk = statement.table.c[w.pk.key]
    query = select(pk).with_for_update(of=statement.table)
    if statement.whereclause is not None:
        query = query.where(statement.whereclause)
    return list(orm_state.session.scalars(query))


def _inactive(session: Session, w: _Watch, keys: list[Any]) -> list[Any]:
    """Those of ``keys`` whose row is now inactive (a NULL is inactive, as
    the store reads it)."""
    if not keys:
        return []
    active: ColumnElement[Any] = func.coalesce(w.active, false())
    query = select(w.pk).where(w.pk.in_(keys), active == false())
    return list(session.scalars(query))


def _on_execute(orm_state: ORMExecuteState) -> Any:
    if not (orm_state.is_delete or orm_state.is_update):
        return None
    watched = [
        w
        for w in _target(orm_state)
        if orm_state.is_delete or _sets_active(orm_state, w)
    ]
    if not watched:
        return None
    matched = [(w, _keys_matched(orm_state, w)) for w in watched]
    result = orm_state.invoke_statement()
    session = orm_state.session
    for w, keys in matched:
        if orm_state.is_update:
            keys = _inactive(session, w, keys)
        _pend(session, w, w.subs(keys), deleted=orm_state.is_delete)
    return result


def _pend(
    session: Session, w: _Watch, subs: set[str], *, deleted: bool = False
) -> None:
    """Revoke ``subs`` (and, ``deleted``, forget their factors) once
    ``session`` commits; forgotten if the savepoint (or transaction) it
    happened in rolls back."""
    if subs:
        transaction = session.get_nested_transaction() or session.get_transaction()
        pending: list[_Pending] = session.info.setdefault(_PENDING, [])
        pending.append((transaction, w, subs, deleted))


#: A revocation waiting for the commit: the (innermost) transaction of the
#: statement, the watch, the users, and whether they were deleted.
_Pending = tuple[Any, _Watch, set[str], bool]


def _after_commit(session: Session) -> None:
    """Revoke what the committed transaction removed or disabled.

    Several stores may watch one model (the built-in ``User`` of several
    apps on one database, each with its revocation store): the first to
    revoke the sessions marks them revoked, and the others then find none
    left to tell their own store about.  So each store is also told every
    session the others revoked."""
    pending: list[_Pending] | None = session.info.pop(_PENDING, None)
    by_watch: dict[_Watch, set[str]] = {}
    deleted: dict[_Watch, set[str]] = {}
    for _, w, subs, gone in pending or ():
        by_watch.setdefault(w, set()).update(subs)
        if gone:
            deleted.setdefault(w, set()).update(subs)
    revoked: list[str] = []
    for w, subs in by_watch.items():
        try:
            revoked += w.revoke(sorted(subs)) or []
        except Exception:  # the host's commit happened: log, never raise
            logger.exception(
                "tokenauth could not end the sessions of users removed or"
                " disabled by a bulk statement"
            )
    if revoked and len(by_watch) > 1:
        for w in by_watch:
            w.tell(revoked)
    for w, subs in deleted.items():
        w.forget(sorted(subs))


def _after_soft_rollback(session: Session, previous_transaction: Any) -> None:
    """A transaction or savepoint rolled back: forget what happened in it
    (or in a savepoint inside it)."""
    pending: list[_Pending] | None = session.info.get(_PENDING)
    if pending:
        pending[:] = [e for e in pending if not within(e[0], previous_transaction)]


def within(transaction: Any, outer: Any) -> bool:
    """Whether ``transaction`` (a session's, or a savepoint) is ``outer`` or
    one nested inside it: what a rollback of ``outer`` undid."""
    while transaction is not None:
        if transaction is outer:
            return True
        transaction = transaction.parent
    return False


def revoke_on_apps(apps: Iterable[Any], subs: list[str]) -> list[str]:
    """End every session of ``subs`` on each of ``apps``, logging (not
    raising) a failure: the host's commit has happened, and the users'
    refresh tokens are refused at their next refresh anyway.  Returns the
    ids of the sessions revoked."""
    from ._sessions import revoke_sessions
    from ._state import get_state

    revoked: list[str] = []
    for app in list(apps):
        with app.app_context():
            for sub in subs:
                try:
                    revoked += revoke_sessions(
                        get_state(app), sub, reason="user-gone", cutoff=True
                    )
                except Exception:
                    logger.exception(
                        "tokenauth could not end the sessions of deleted or"
                        " disabled user %s",
                        sub,
                    )
    return revoked


def forget_on_apps(apps: Iterable[Any], subs: list[str]) -> None:
    """Remove the second factors of the deleted users ``subs`` from each of
    ``apps``' database, logging (not raising) a failure: the host's commit
    has happened.  Until it is done, a factor of a deleted user signs in
    nobody (the user store finds no such user); a new user given the same
    id would inherit it."""
    from . import _mfa_status as mfa_status
    from ._state import get_state

    for app in list(apps):
        with app.app_context():
            try:
                with get_state(app).db.begin() as conn:
                    for sub in subs:
                        mfa_status.remove_all(conn, sub)
            except Exception:
                logger.exception(
                    "tokenauth could not remove the second factors of deleted users %s",
                    ", ".join(subs),
                )


def tell_apps(apps: Iterable[Any], session_ids: list[str]) -> None:
    """Tell each app's revocation store of sessions another store's app
    revoked (see :func:`_after_commit`)."""
    from ._state import get_state

    for app in list(apps):
        with app.app_context():
            try:
                get_state(app).revocation.revoke_sessions(session_ids)
            except Exception:
                logger.exception("tokenauth could not tell its revocation store")
