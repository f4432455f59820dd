"""The migrations in ``alembic/``: up, down and up again on SQLite and
PostgreSQL, in agreement with the models, and beside a host application's own
tables and Alembic history.

Every test gets an empty database of its own (:func:`fresh_database`), so the
session's ``migrated_engine`` is never touched.
"""

from __future__ import annotations

import ast
import importlib.util
import logging
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.operations import Operations
from alembic.script import ScriptDirectory
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import (
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    inspect,
    make_url,
    select,
    text,
)
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from flask_tokenauth import TokenAuth, auth_bp, login_required
from flask_tokenauth import _db as db_module
from flask_tokenauth._engine import make_engine
from flask_tokenauth._migrate import VERSION_TABLE, downgrade, script_location, upgrade
from flask_tokenauth.models import RefreshToken, User, metadata, utcnow

from .conftest import Auth, base_config, bearer, throwaway_database

REPO = Path(__file__).resolve().parent.parent
OUR_TABLES = set(metadata.tables)


def env_constants() -> dict[str, Any]:
    """``VERSION_TABLE`` and ``OUR_TABLES`` as ``alembic/env.py`` sets them
    (read, not imported: env.py runs migrations when imported)."""
    tree = ast.parse((REPO / "alembic" / "env.py").read_text())
    found: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and target.id.isupper():
                try:
                    found[target.id] = ast.literal_eval(node.value)
                except ValueError:
                    continue
    return found


ENV = env_constants()


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """The filter of ``alembic/env.py``: only our tables."""
    return type_ != "table" or name in ENV["OUR_TABLES"]


def head() -> str:
    revision = ScriptDirectory(script_location()).get_current_head()
    assert revision is not None
    return revision


def our_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        options = {"version_table": VERSION_TABLE}
        context = MigrationContext.configure(conn, opts=options)
        return context.get_current_revision()


def table_names(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


@contextmanager
def fresh_database(database_url: str, directory: Path) -> Iterator[str]:
    """The URL of an empty database for one test: a new SQLite file in
    ``directory``, or a new PostgreSQL database on the session's server,
    dropped afterwards."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        yield f"sqlite:///{directory / f'fresh-{uuid.uuid4().hex[:8]}.sqlite3'}"
        return
    with throwaway_database(database_url, f"{url.database}_m") as fresh:
        yield fresh


@pytest.fixture
def empty_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    with fresh_database(database_url, tmp_path) as url:
        yield url


@pytest.fixture
def fresh_engine(empty_url: str) -> Iterator[Engine]:
    engine = make_engine(empty_url, {})
    yield engine
    engine.dispose()


def make_0_1_database(engine: Engine) -> None:
    """Run revision 0001 as 0.1 shipped it (unprefixed ``users`` and
    ``refresh_tokens``) on ``engine`` and record it: a database made by
    0.1, for our 0002-0004 to upgrade."""
    path = Path(__file__).parent / "migrations_0_1" / "revision_0001.py"
    spec = importlib.util.spec_from_file_location("tokenauth_0_1_0001", path)
    assert spec is not None and spec.loader is not None
    revision = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(revision)
    with engine.begin() as conn:
        context = MigrationContext.configure(
            conn, opts={"version_table": VERSION_TABLE}
        )
        with Operations.context(context):
            revision.upgrade()
        context.stamp(ScriptDirectory(script_location()), "0001")


@pytest.fixture
def legacy_engine(fresh_engine: Engine) -> Engine:
    """An empty database made by 0.1: its tables without our prefix."""
    make_0_1_database(fresh_engine)
    assert table_names(fresh_engine) >= {"users", "refresh_tokens"}
    return fresh_engine


def test_env_matches_models_and_package() -> None:
    # If a table is added to the models but not to env.py's filter,
    # autogenerate would silently skip it.
    assert ENV["OUR_TABLES"] == OUR_TABLES
    assert ENV["VERSION_TABLE"] == VERSION_TABLE == "tokenauth_alembic_version"


def test_revisions_use_only_op_and_sa() -> None:
    """Revision files never import the models, so they stay valid as the
    models change."""
    versions = sorted((REPO / "alembic" / "versions").glob("*.py"))
    assert versions
    for path in versions:
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                imported.add((node.module or "").split(".")[0])
        assert imported <= {"alembic", "sqlalchemy"}, (path.name, imported)


def test_upgrade_downgrade_upgrade(fresh_engine: Engine) -> None:
    assert table_names(fresh_engine) == set()

    upgrade(fresh_engine)
    assert table_names(fresh_engine) == OUR_TABLES | {VERSION_TABLE}
    assert our_revision(fresh_engine) == head()

    downgrade(fresh_engine, "base")
    # Alembic keeps its (now empty) version table; nothing else is left.
    assert table_names(fresh_engine) <= {VERSION_TABLE}
    assert our_revision(fresh_engine) is None

    upgrade(fresh_engine)
    assert our_revision(fresh_engine) == head()
    # The tables work with the models: server defaults, the foreign key.
    with Session(fresh_engine) as session:
        user = User(email="migrated@example.com", password_hash="x")
        session.add(user)
        session.flush()
        now = utcnow()
        session.add(
            RefreshToken(
                user_id=user.id,
                token_hash="h" * 64,
                family_id="f" * 32,
                created_at=now,
                expires_at=now,
                family_expires_at=now,
            )
        )
        session.commit()
        assert session.scalar(select(User.email)) == "migrated@example.com"


def test_each_revision_downgrades_and_upgrades(fresh_engine: Engine) -> None:
    """Up one revision, down one, up again, from base to head: every
    downgrade undoes its upgrade."""
    script = ScriptDirectory(script_location())
    revisions = [rev.revision for rev in script.walk_revisions("base", "heads")]
    for revision in reversed(revisions):
        before = our_revision(fresh_engine)
        upgrade(fresh_engine, revision)
        assert our_revision(fresh_engine) == revision
        downgrade(fresh_engine, "-1")
        assert our_revision(fresh_engine) == before
        upgrade(fresh_engine, revision)
    assert our_revision(fresh_engine) == head()


def compare(engine: Engine, **opts: Any) -> list[Any]:
    """The differences autogenerate finds, configured like ``alembic/env.py``."""
    options = {
        "target_metadata": metadata,
        "version_table": VERSION_TABLE,
        "include_name": include_name,
        "compare_type": True,
    }
    options.update(opts)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts=options)
        return list(compare_metadata(context, metadata))


def test_schema_matches_models(fresh_engine: Engine) -> None:
    upgrade(fresh_engine)
    assert compare(fresh_engine) == []


def host_tables(engine: Engine) -> MetaData:
    """A host application's own table and its own Alembic version table."""
    host = MetaData()
    items = Table(
        "host_items",
        host,
        Column("id", Integer, primary_key=True),
        Column("name", String(50)),
    )
    versions = Table(
        "alembic_version", host, Column("version_num", String(32), primary_key=True)
    )
    host.create_all(engine)
    with engine.begin() as conn:
        conn.execute(items.insert(), [{"id": 1, "name": "kept"}])
        conn.execute(versions.insert(), [{"version_num": "hostrev1"}])
    return host


def host_rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    queries = {
        "host_items": "SELECT id, name FROM host_items",
        "alembic_version": "SELECT version_num FROM alembic_version",
    }
    with engine.connect() as conn:
        return {
            table: [tuple(row) for row in conn.execute(text(query))]
            for table, query in queries.items()
        }


def test_host_tables_and_history_untouched(fresh_engine: Engine) -> None:
    host_tables(fresh_engine)
    expected = {"host_items": [(1, "kept")], "alembic_version": [("hostrev1",)]}
    assert host_rows(fresh_engine) == expected

    upgrade(fresh_engine)
    assert host_rows(fresh_engine) == expected
    assert our_revision(fresh_engine) == head()
    assert table_names(fresh_engine) == (
        OUR_TABLES | {VERSION_TABLE, "host_items", "alembic_version"}
    )
    # env.py's filter keeps the host's tables out of our autogenerate ...
    assert compare(fresh_engine) == []
    # ... which it has to: unfiltered, autogenerate would drop them.
    unfiltered = compare(fresh_engine, include_name=None)
    assert ("remove_table", "host_items") in [
        (diff[0], diff[1].name) for diff in unfiltered if diff[0] == "remove_table"
    ]

    downgrade(fresh_engine, "base")
    assert host_rows(fresh_engine) == expected
    assert table_names(fresh_engine) & OUR_TABLES == set()


def test_alembic_command_line_from_checkout(empty_url: str) -> None:
    # With an __init__.py the folder would shadow the Alembic library when
    # ``alembic`` runs from the repository root.
    assert not (REPO / "alembic" / "__init__.py").exists()
    # The spelling alembic.ini documents: no driver in a PostgreSQL URL.
    url = make_url(empty_url)
    if url.get_backend_name() == "postgresql":
        url = url.set(drivername="postgresql")
    alembic = [
        str(Path(sys.executable).parent / "alembic"),
        "-x",
        f"url={url.render_as_string(hide_password=False)}",
    ]

    for args in (["upgrade", "head"], ["current"]):
        result = subprocess.run(
            [*alembic, *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
    assert f"{head()} (head)" in result.stdout

    engine = make_engine(empty_url, {})
    try:
        assert table_names(engine) == OUR_TABLES | {VERSION_TABLE}
        assert our_revision(engine) == head()
    finally:
        engine.dispose()


def test_0002_turns_existing_families_into_sessions(legacy_engine: Engine) -> None:
    """Refresh tokens issued before sessions existed keep working: each
    family becomes a session, revoked if its tokens were."""

    upgrade(legacy_engine, "0001")
    now = datetime.now(timezone.utc)
    with legacy_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (id, email, password_hash) VALUES (1, 'a@b.co', 'x')"
            )
        )
        for i, (family, revoked) in enumerate(
            [("f1", None), ("f1", None), ("f2", now)]
        ):
            conn.execute(
                text(
                    "INSERT INTO refresh_tokens (user_id, token_hash, family_id,"
                    " created_at, expires_at, family_expires_at, revoked_at)"
                    " VALUES (1, :h, :f, :c, :e, :e, :r)"
                ),
                {
                    "h": f"h{i}",
                    "f": family,
                    "c": now,
                    "e": now + timedelta(days=7),
                    "r": revoked,
                },
            )
    upgrade(legacy_engine, "0002")
    with legacy_engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, user_id, revoked_at FROM auth_sessions ORDER BY id")
        ).all()
    assert [(r.id, r.user_id, r.revoked_at is not None) for r in rows] == [
        ("f1", 1, False),
        ("f2", 1, True),
    ]
    downgrade(legacy_engine, "0001")
    assert "auth_sessions" not in table_names(legacy_engine)


def create_sql(engine: Engine, table: str) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(
                text("SELECT sql FROM sqlite_master WHERE name = :t"), {"t": table}
            ).scalar_one()
        )


def test_0003_revokes_sessions_and_never_reuses_ids(legacy_engine: Engine) -> None:
    """Every live session is revoked (their ids are not bound to their
    users), nothing is lost on the way (SQLite recreates two tables), and a
    deleted user's id is never handed out again."""
    upgrade(legacy_engine, "0002")
    now = datetime.now(timezone.utc)
    users = []
    with legacy_engine.begin() as conn:
        for n in (1, 2):
            user = conn.execute(
                text(
                    "INSERT INTO users (email, password_hash) VALUES (:e, 'x')"
                    " RETURNING id"
                ),
                {"e": f"u{n}@example.com"},
            ).scalar_one()
            users.append(user)
            conn.execute(
                text(
                    "INSERT INTO auth_sessions (id, user_id, created_at, last_used_at,"
                    " expires_at) VALUES (:s, :u, :c, :c, :e)"
                ),
                {"s": f"s{n}", "u": user, "c": now, "e": now + timedelta(days=7)},
            )
            conn.execute(
                text(
                    "INSERT INTO refresh_tokens (user_id, token_hash, family_id,"
                    " created_at, expires_at, family_expires_at)"
                    " VALUES (:u, :h, :s, :c, :e, :e)"
                ),
                {
                    "u": user,
                    "h": f"h{n}",
                    "s": f"s{n}",
                    "c": now,
                    "e": now + timedelta(days=7),
                },
            )
    sqlite = legacy_engine.dialect.name == "sqlite"

    upgrade(legacy_engine, "0003")
    with legacy_engine.connect() as conn:
        sessions = conn.execute(text("SELECT revoked_at FROM auth_sessions")).all()
        tokens = conn.execute(
            text("SELECT revoked_at, grace_used_at FROM refresh_tokens")
        ).all()
        assert conn.execute(text("SELECT count(*) FROM users")).scalar() == 2
        if sqlite:  # migrations ran with them off; the pooled connection is back
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    assert len(sessions) == 2 and all(r.revoked_at is not None for r in sessions)
    assert len(tokens) == 2 and all(r.revoked_at is not None for r in tokens)
    assert all(r.grace_used_at is None for r in tokens)
    if sqlite:
        assert "AUTOINCREMENT" in create_sql(legacy_engine, "users")
        assert "AUTOINCREMENT" in create_sql(legacy_engine, "refresh_tokens")

    with legacy_engine.begin() as conn:
        conn.execute(text("DELETE FROM users WHERE id = :u"), {"u": users[-1]})
        newcomer = conn.execute(
            text(
                "INSERT INTO users (email, password_hash)"
                " VALUES ('new@example.com', 'x') RETURNING id"
            )
        ).scalar_one()
    assert newcomer > users[-1]

    downgrade(legacy_engine, "0002")
    assert "grace_used_at" not in {
        c["name"] for c in inspect(legacy_engine).get_columns("refresh_tokens")
    }
    if sqlite:
        assert "AUTOINCREMENT" not in create_sql(legacy_engine, "users")


# -- an app whose migrations were not run --------------------------------------

NOT_MIGRATED = {
    "error": "The database is not set up: run 'flask tokenauth db upgrade'",
    "code": "DATABASE_NOT_MIGRATED",
}


@pytest.fixture
def first_not_migrated(monkeypatch: pytest.MonkeyPatch) -> None:
    """This test's process has not yet logged the missing migrations."""
    monkeypatch.setattr(db_module, "_first_not_migrated", db_module._Once())


def unmigrated_app(url: str, **config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(base_config(TOKENAUTH_DATABASE_URL=url, **config))
    TokenAuth(app)
    app.register_blueprint(auth_bp)

    @app.get("/protected")
    @login_required
    def protected() -> dict[str, bool]:
        return {"ok": True}

    return app


@pytest.fixture
def signed_in(auth: Auth) -> tuple[str, str]:
    """An access token and a refresh cookie, issued by an app on a migrated
    database with the same secrets."""
    response = auth.register()
    assert response.status_code == 201, response.get_json()
    cookie = auth.refresh_cookie()
    assert cookie
    return response.get_json()["accessToken"], cookie


Request = Any  # (client, access token, refresh cookie) -> response


def registering(client: FlaskClient, token: str, cookie: str) -> TestResponse:
    return Auth(client).register("other@example.com")


def logging_in(client: FlaskClient, token: str, cookie: str) -> TestResponse:
    return Auth(client).login()


def refreshing(client: FlaskClient, token: str, cookie: str) -> TestResponse:
    auth = Auth(client)
    auth.set_refresh_cookie(cookie)
    return auth.refresh()


def protected(client: FlaskClient, token: str, cookie: str) -> TestResponse:
    return client.get("/protected", headers=bearer(token))


def assert_not_migrated(response: TestResponse) -> None:
    assert response.status_code == 500, response.data
    assert response.is_json, response.data  # never an HTML page
    assert response.get_json() == NOT_MIGRATED
    assert "Retry-After" not in response.headers  # a retry cannot help


@pytest.mark.usefixtures("first_not_migrated")
@pytest.mark.parametrize("request_", [registering, logging_in, refreshing, protected])
def test_never_migrated_database_says_so(
    empty_url: str,
    signed_in: tuple[str, str],
    caplog: pytest.LogCaptureFixture,
    request_: Request,
) -> None:
    app = unmigrated_app(empty_url)
    try:
        client = app.test_client()
        for _ in range(3):
            assert_not_migrated(request_(client, *signed_in))
    finally:
        get_engine_of(app).dispose()
    # Once per process, at ERROR, with the command to run.
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    message = errors[0].getMessage()
    assert f"run 'flask --app {__name__} tokenauth db upgrade'" in message
    assert "migrations not run" in message


@pytest.mark.usefixtures("first_not_migrated")
def test_forgotten_migration_says_so(legacy_engine: Engine, empty_url: str) -> None:
    """A 0.1 database one migration behind the code (its tables not yet
    renamed by 0004) says what to run, as one never migrated does."""
    upgrade(legacy_engine, "0003")
    app = unmigrated_app(empty_url)
    try:
        assert_not_migrated(Auth(app.test_client()).register())
    finally:
        get_engine_of(app).dispose()


def get_engine_of(app: Flask) -> Engine:
    from flask_tokenauth._state import get_state

    return get_state(app).db.engine


def insert_0003_rows(engine: Engine, now: datetime) -> list[int]:
    """Two users (one with a cutoff), a session and a token each, at 0003."""
    users = []
    with engine.begin() as conn:
        for n, cutoff in ((1, now), (2, None)):
            user = conn.execute(
                text(
                    "INSERT INTO users (email, password_hash, tokens_valid_after)"
                    " VALUES (:e, 'x', :c) RETURNING id"
                ),
                {"e": f"u{n}@example.com", "c": cutoff},
            ).scalar_one()
            users.append(user)
            conn.execute(
                text(
                    "INSERT INTO auth_sessions (id, user_id, created_at, last_used_at,"
                    " expires_at) VALUES (:s, :u, :c, :c, :e)"
                ),
                {"s": f"s{n}", "u": user, "c": now, "e": now + timedelta(days=7)},
            )
            conn.execute(
                text(
                    "INSERT INTO refresh_tokens (user_id, token_hash, family_id,"
                    " created_at, expires_at, family_expires_at)"
                    " VALUES (:u, :h, :s, :c, :e, :e)"
                ),
                {"u": user, "h": f"h{n}", "s": f"s{n}", "c": now, "e": now},
            )
        # The newest user is deleted: its id must never come back.
        conn.execute(
            text("INSERT INTO users (email, password_hash) VALUES ('gone@x.co', 'x')")
        )
        conn.execute(text("DELETE FROM users WHERE email = 'gone@x.co'"))
    return users


def test_0004_prefixes_tables_and_keeps_every_row(legacy_engine: Engine) -> None:
    """The 0.1 tables are renamed with their rows, user ids become the
    ``sub`` strings, the cutoff moves to its table, foreign keys are gone,
    ids are never reused, and the downgrade brings it all back."""
    upgrade(legacy_engine, "0003")
    now = datetime.now(timezone.utc).replace(microsecond=0)
    users = insert_0003_rows(legacy_engine, now)

    upgrade(legacy_engine, "0004")
    # 0005, 0008 and 0009 add tables; with them the schema is the models'.
    later = {
        "tokenauth_revocation_events",
        "tokenauth_email_tokens",
        "tokenauth_email_verifications",
        "tokenauth_totp_secrets",
        "tokenauth_recovery_codes",
        "tokenauth_passkeys",
        "tokenauth_webauthn_challenges",
    }
    assert table_names(legacy_engine) == OUR_TABLES - later | {VERSION_TABLE}
    upgrade(legacy_engine)  # 0005 to 0009 add tables, triggers, columns
    assert compare(legacy_engine) == []  # names and types as the models say
    with legacy_engine.connect() as conn:
        emails = conn.execute(
            text("SELECT id, email FROM tokenauth_users ORDER BY id")
        ).all()
        sessions = conn.execute(
            text("SELECT id, user_id FROM tokenauth_sessions ORDER BY id")
        ).all()
        tokens = conn.execute(
            text("SELECT token_hash, user_id FROM tokenauth_refresh_tokens ORDER BY id")
        ).all()
        cutoffs = conn.execute(
            text("SELECT user_id, tokens_valid_after FROM tokenauth_user_cutoffs")
        ).all()
    assert [tuple(r) for r in emails] == [
        (users[0], "u1@example.com"),
        (users[1], "u2@example.com"),
    ]
    assert [tuple(r) for r in sessions] == [
        ("s1", str(users[0])),
        ("s2", str(users[1])),
    ]
    assert [tuple(r) for r in tokens] == [("h1", str(users[0])), ("h2", str(users[1]))]
    assert [(r[0], as_utc_naive(r[1])) for r in cutoffs] == [
        (str(users[0]), now.replace(tzinfo=None))
    ]
    inspector = inspect(legacy_engine)
    for table in ("tokenauth_sessions", "tokenauth_refresh_tokens"):
        assert inspector.get_foreign_keys(table) == []
    # A host's user id of any shape fits; no foreign key refuses it.
    with legacy_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO tokenauth_sessions (id, user_id, created_at,"
                " last_used_at, expires_at) VALUES ('s3', :u, :c, :c, :c)"
            ),
            {"u": "2b4c1f0e-0000-4000-8000-000000000000", "c": now},
        )
        newcomer = conn.execute(
            text(
                "INSERT INTO tokenauth_users (email, password_hash)"
                " VALUES ('new@x.co', 'x') RETURNING id"
            )
        ).scalar_one()
    assert newcomer > users[-1] + 1  # the deleted one's id is not reused

    downgrade(legacy_engine, "0003")
    assert {"users", "auth_sessions", "refresh_tokens"} <= table_names(legacy_engine)
    with legacy_engine.connect() as conn:
        sessions = conn.execute(
            text("SELECT id, user_id FROM auth_sessions ORDER BY id")
        ).all()
        cutoff = conn.execute(
            text("SELECT tokens_valid_after FROM users WHERE id = :u"), {"u": users[0]}
        ).scalar_one()
        count = conn.execute(text("SELECT count(*) FROM refresh_tokens")).scalar()
    # The host user's session cannot be held by the 0.1 schema: dropped.
    assert [tuple(r) for r in sessions] == [("s1", users[0]), ("s2", users[1])]
    assert as_utc_naive(cutoff) == now.replace(tzinfo=None)
    assert count == 2
    assert {
        fk["name"] for fk in inspect(legacy_engine).get_foreign_keys("auth_sessions")
    } == {"fk_auth_sessions_user_id_users"}
    upgrade(legacy_engine)
    assert compare(legacy_engine) == []


def as_utc_naive(value: Any) -> Any:
    """A timestamp read back: naive UTC on SQLite, aware on PostgreSQL."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value
