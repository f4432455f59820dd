"""Keeping a host app's Alembic autogenerate away from our tables.

Our tables live in the host's database but belong to our own migration
history (``flask tokenauth db upgrade``).  The host's autogenerate
(``flask db migrate`` with Flask-Migrate, ``alembic revision
--autogenerate``) compares the database with the host's models, finds our
tables in the one and not in the other, and writes a migration that drops
them.  These two filters hide our tables from it; pass either (or both)::

    from flask_tokenauth import alembic_include_name, alembic_include_object

    Migrate(app, db, include_name=alembic_include_name)

    # or in your own alembic/env.py
    context.configure(..., include_name=alembic_include_name)

The names come from our models' :class:`~sqlalchemy.MetaData` at each call,
plus our version table, so a table added or renamed by a later release is
excluded without a change in the host's code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._migrate import VERSION_TABLE
from .models import metadata


def tokenauth_tables() -> frozenset[str]:
    """The names of every table flask_tokenauth creates, its version table
    included: to build a filter of your own."""
    return frozenset(table.name for table in metadata.tables.values()) | {VERSION_TABLE}


def _is_ours(table_name: str | None) -> bool:
    return table_name is not None and table_name in tokenauth_tables()


def alembic_include_name(
    name: str | None, type_: str, parent_names: Mapping[str, Any]
) -> bool:
    """Alembic's ``include_name`` hook: ``False`` for our tables (and their
    columns, indexes and constraints), ``True`` for everything else.

    Reflected names only: it keeps autogenerate from reading our tables at
    all, so it never proposes to drop or alter them.
    """
    if type_ == "table":
        return not _is_ours(name)
    if type_ == "schema":
        return True
    return not _is_ours(parent_names.get("table_name"))


def alembic_include_object(
    object: Any,  # Alembic passes it by keyword under this name
    name: str | None,
    type_: str,
    reflected: bool,
    compare_to: Any,
) -> bool:
    """Alembic's ``include_object`` hook: ``False`` for our tables and
    everything on them, reflected or in a model, ``True`` for the rest."""
    if type_ == "table":
        return not _is_ours(name)
    table = getattr(object, "table", None)
    return not _is_ours(getattr(table, "name", None))
