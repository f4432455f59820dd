"""One database by default: with Flask-SQLAlchemy on the app and no
``TOKENAUTH_DATABASE_URL``, our tables live in the app's database, found as
Flask-SQLAlchemy finds it (``sqlite:///app.db`` in the instance folder), in
either order of set-up; the CLI says which database it migrates.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import inspect, make_url, text

from flask_tokenauth import TokenAuth, auth_bp
from flask_tokenauth._state import get_state

from .conftest import Auth, base_config
from .test_migrations import fresh_database

#: Set up first, then second.
ORDERS = ["flask_sqlalchemy_first", "tokenauth_first"]


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working directory, apart from the instance folder: a database
    file made here instead of there is the bug."""
    directory = tmp_path / "cwd"
    directory.mkdir()
    monkeypatch.chdir(directory)
    return directory


@pytest.fixture
def host_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """The host's ``SQLALCHEMY_DATABASE_URI``: a relative SQLite path (Flask-
    SQLAlchemy 3 reads it in the instance folder), or a new PostgreSQL
    database with a password in its URL (the server trusts any)."""
    if make_url(database_url).get_backend_name() == "sqlite":
        yield "sqlite:///app.db"
        return
    with fresh_database(database_url, tmp_path) as url:
        yield make_url(url).set(password="s3cret-pw").render_as_string(False)


def host_app(tmp_path: Path, order: str, **config: Any) -> tuple[Flask, SQLAlchemy]:
    app = Flask(__name__, instance_path=str(tmp_path / "instance"))
    app.config.update(base_config(**config))
    db = SQLAlchemy()
    if order == "flask_sqlalchemy_first":
        db.init_app(app)
        TokenAuth(app)
    else:
        TokenAuth(app)
        db.init_app(app)
    app.register_blueprint(auth_bp)
    return app, db


def dispose(app: Flask, db: SQLAlchemy) -> None:
    with app.app_context():
        db.engine.dispose()
    get_state(app).db.engine.dispose()


@pytest.mark.parametrize("order", ORDERS)
def test_our_tables_go_to_the_flask_sqlalchemy_database(
    tmp_path: Path, cwd: Path, host_url: str, order: str
) -> None:
    app, db = host_app(tmp_path, order, SQLALCHEMY_DATABASE_URI=host_url)
    try:
        with app.app_context():
            host_engine = db.engine
        # The very engine: one pool, and the URL resolved once, by its owner.
        assert get_state(app).db.engine is host_engine

        result = app.test_cli_runner().invoke(args=["tokenauth", "db", "upgrade"])
        assert result.exit_code == 0, result.output
        shown = host_engine.url.render_as_string(hide_password=True)
        assert f"flask_tokenauth database: {shown}" in result.output
        assert "Flask-SQLAlchemy's engine" in result.output
        assert "s3cret-pw" not in result.output
        if host_engine.dialect.name == "postgresql":
            assert ":***@" in result.output
        else:
            instance_db = tmp_path / "instance" / "app.db"
            assert host_engine.url.database == str(instance_db)
            assert str(instance_db) in result.output
        assert "tokenauth_users" in inspect(host_engine).get_table_names()

        assert Auth(app.test_client()).register().status_code == 201
        with host_engine.connect() as conn:
            count = conn.execute(text("SELECT count(*) FROM tokenauth_users"))
            assert count.scalar() == 1
        assert list(cwd.iterdir()) == []  # no ./app.db beside
    finally:
        dispose(app, db)


def test_an_in_memory_database_is_shared(tmp_path: Path) -> None:
    """``sqlite://``: only Flask-SQLAlchemy's engine reaches its memory."""
    app, db = host_app(tmp_path, "tokenauth_first", SQLALCHEMY_DATABASE_URI="sqlite://")
    try:
        runner = app.test_cli_runner()
        assert runner.invoke(args=["tokenauth", "db", "upgrade"]).exit_code == 0
        assert Auth(app.test_client()).register().status_code == 201
        with app.app_context():
            emails = db.session.execute(text("SELECT email FROM tokenauth_users"))
            assert emails.scalars().all() == ["user@example.com"]
    finally:
        dispose(app, db)


def test_tokenauth_database_url_wins(tmp_path: Path, cwd: Path) -> None:
    ours = tmp_path / "ours.sqlite3"
    app, db = host_app(
        tmp_path,
        "flask_sqlalchemy_first",
        SQLALCHEMY_DATABASE_URI="sqlite:///app.db",
        TOKENAUTH_DATABASE_URL=f"sqlite:///{ours}",
    )
    try:
        result = app.test_cli_runner().invoke(args=["tokenauth", "db", "upgrade"])
        assert result.exit_code == 0, result.output
        assert f"sqlite:///{ours} (TOKENAUTH_DATABASE_URL)" in result.output
        assert get_state(app).db.engine.url.database == str(ours)
    finally:
        dispose(app, db)


def test_without_flask_sqlalchemy_the_uri_is_read_as_it_would(
    tmp_path: Path, cwd: Path
) -> None:
    """The host's key without the extension (not set up yet when we are,
    and never after): a relative SQLite path in the instance folder too."""
    app = Flask(__name__, instance_path=str(tmp_path / "instance"))
    app.config.update(base_config(SQLALCHEMY_DATABASE_URI="sqlite:///app.db"))
    TokenAuth(app)
    try:
        result = app.test_cli_runner().invoke(args=["tokenauth", "db", "upgrade"])
        assert result.exit_code == 0, result.output
        assert "(SQLALCHEMY_DATABASE_URI" in result.output
        engine = get_state(app).db.engine
        assert engine.url.database == str(tmp_path / "instance" / "app.db")
        assert list(cwd.iterdir()) == []
    finally:
        get_state(app).db.engine.dispose()
