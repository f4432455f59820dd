"""A first install beside the host's own tables: our migrations create the
``tokenauth_*`` tables directly and never touch a host table of a name that
0.1 used (or that an auth library commonly uses), on the way up or down.

The 0.1 databases, whose tables 0004 renames, are tested in
tests/test_migrations.py (``legacy_engine``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, select
from sqlalchemy.orm import Session

from flask_tokenauth._engine import make_engine
from flask_tokenauth._migrate import VERSION_TABLE, downgrade, script_location, upgrade
from flask_tokenauth.models import User

from .test_migrations import (
    OUR_TABLES,
    compare,
    fresh_database,
    head,
    our_revision,
    table_names,
)

#: The names a host app's tables commonly have that 0.1 used or that are
#: close to ours.
HOST_NAMES = ("users", "user", "refresh_tokens", "sessions", "auth_sessions")
#: None of them, each one alone, all of them.
PRESENT = [(), *((name,) for name in HOST_NAMES), HOST_NAMES]


@pytest.fixture
def engine_(database_url: str, tmp_path: Path) -> Iterator[Engine]:
    with fresh_database(database_url, tmp_path) as url:
        engine = make_engine(url, {})
        yield engine
        engine.dispose()


def make_host_tables(engine: Engine, names: tuple[str, ...]) -> MetaData:
    """The host's own tables of these names, of a shape unlike ours, with
    rows."""
    host = MetaData()
    for name in names:
        Table(
            name,
            host,
            Column("id", Integer, primary_key=True),
            Column("name", String(50), nullable=False),
            Column("note", String(50)),
        )
    host.create_all(engine)
    with engine.begin() as conn:
        for table in host.sorted_tables:
            rows = [{"id": n, "name": f"{table.name}-{n}"} for n in (1, 2)]
            conn.execute(table.insert(), [{**row, "note": "host"} for row in rows])
    return host


def host_rows(engine: Engine, host: MetaData) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        return {
            table.name: [tuple(row) for row in conn.execute(select(table))]
            for table in host.sorted_tables
        }


def use_our_tables(engine: Engine) -> None:
    """Our tables work with the models (not the host's of a similar name)."""
    with Session(engine) as session:
        session.add(User(email="ours@example.com", password_hash="x"))
        session.commit()
        assert session.scalar(select(User.email)) == "ours@example.com"


@pytest.mark.parametrize("present", PRESENT, ids=lambda p: "+".join(p) or "none")
def test_first_install_beside_host_tables(
    engine_: Engine, present: tuple[str, ...]
) -> None:
    host = make_host_tables(engine_, present)
    rows = host_rows(engine_, host)
    assert sum(len(r) for r in rows.values()) == 2 * len(present)

    upgrade(engine_)
    assert our_revision(engine_) == head()
    assert table_names(engine_) == OUR_TABLES | {VERSION_TABLE} | set(present)
    assert host_rows(engine_, host) == rows
    assert compare(engine_) == []  # the models' names, columns and types
    use_our_tables(engine_)
    assert host_rows(engine_, host) == rows

    downgrade(engine_, "base")
    assert table_names(engine_) <= {VERSION_TABLE} | set(present)
    assert set(present) <= table_names(engine_)
    assert host_rows(engine_, host) == rows

    upgrade(engine_)
    assert compare(engine_) == []
    assert host_rows(engine_, host) == rows


@pytest.mark.parametrize("present", [(), HOST_NAMES], ids=["none", "all"])
def test_every_revision_beside_host_tables(
    engine_: Engine, present: tuple[str, ...]
) -> None:
    """Up one revision, down one, up again, from base to head; below 0004
    the tables have 0.1's names only where all of them are free."""
    host = make_host_tables(engine_, present)
    rows = host_rows(engine_, host)
    script = ScriptDirectory(script_location())
    revisions = [rev.revision for rev in script.walk_revisions("base", "heads")]
    for revision in reversed(revisions):
        before = our_revision(engine_)
        upgrade(engine_, revision)
        downgrade(engine_, "-1")
        assert our_revision(engine_) == before
        assert host_rows(engine_, host) == rows
        upgrade(engine_, revision)
        assert host_rows(engine_, host) == rows
    assert compare(engine_) == []
    downgrade(engine_, "0003")
    names = table_names(engine_)
    if present:
        assert {"tokenauth_users", "tokenauth_sessions"} <= names
    else:  # what 0.1's code expects, should the app go back to 0.1
        assert {"users", "auth_sessions", "refresh_tokens"} <= names
        assert "tokenauth_users" not in names
    downgrade(engine_, "base")
    assert table_names(engine_) <= {VERSION_TABLE} | set(present)
    assert host_rows(engine_, host) == rows
