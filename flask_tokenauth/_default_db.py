"""Which database an application's tables go to, when the app names none.

In this order:

1. ``TokenAuth(engine=...)``: that engine.
2. ``TOKENAUTH_DATABASE_URL``: an engine of our own on it.
3. Flask-SQLAlchemy on the app (``app.extensions["sqlalchemy"]``): its
   default engine.  One database and one pool, and no URL to resolve a
   second time: Flask-SQLAlchemy 3 puts ``sqlite:///app.db`` in the instance
   folder, gives ``sqlite://`` (in memory) a single shared connection, and
   applies ``SQLALCHEMY_ENGINE_OPTIONS``; a URL read from the config and
   opened again would get none of that right.
4. ``SQLALCHEMY_DATABASE_URI`` without Flask-SQLAlchemy: that URL, a relative
   SQLite path taken in the instance folder as Flask-SQLAlchemy 3 does.
5. Nothing: ``instance/tokenauth.sqlite3``.

Flask-SQLAlchemy may be set up before or after us (``TokenAuth(app)`` then
``db.init_app(app)`` is common in app factories).  So when
``SQLALCHEMY_DATABASE_URI`` (or ``SQLALCHEMY_BINDS``) is set but
Flask-SQLAlchemy is not there yet, the choice between 3 and 4 waits for the
first use of the database (a request, a CLI command), when every
``init_app`` has run.
"""

from __future__ import annotations

import os
from typing import Any

from flask.sansio.app import App
from sqlalchemy import Engine, make_url

from ._config import Settings
from ._db import EngineSource
from ._engine import make_engine
from .errors import ConfigurationError

#: Flask-SQLAlchemy's key in ``app.extensions``.
FLASK_SQLALCHEMY_KEY = "sqlalchemy"


def default_engine(
    app: App, settings: Settings, engine: EngineSource | None
) -> tuple[EngineSource, str]:
    """The engine (or a callable making it at first use) for ``app``, and
    where it comes from, said for the operator (see the module's docstring).
    """
    if engine is not None:
        return engine, "TokenAuth(engine=...)"
    if settings.database_url:
        own = make_engine(settings.database_url, settings.engine_options)
        return own, "TOKENAUTH_DATABASE_URL"
    if FLASK_SQLALCHEMY_KEY in app.extensions:
        return _flask_sqlalchemy_engine(app), FLASK_SQLALCHEMY_ORIGIN
    if _names_a_database(app.config):
        late = LateEngine(app, settings)
        return late, late.origin
    return make_engine(_default_sqlite_url(app), settings.engine_options), (
        "the default (no TOKENAUTH_DATABASE_URL)"
    )


FLASK_SQLALCHEMY_ORIGIN = "Flask-SQLAlchemy's engine"


class LateEngine:
    """The engine of 3 or 4 above, decided at its first use; until then
    :attr:`origin` says so."""

    def __init__(self, app: App, settings: Settings) -> None:
        self._app = app
        self._settings = settings
        self.origin = "decided at first use"

    def __call__(self) -> Engine:
        app = self._app
        if FLASK_SQLALCHEMY_KEY in app.extensions:
            self.origin = FLASK_SQLALCHEMY_ORIGIN
            return _flask_sqlalchemy_engine(app)
        url = app.config.get("SQLALCHEMY_DATABASE_URI")
        if not url:
            raise ConfigurationError(
                "SQLALCHEMY_BINDS is set but Flask-SQLAlchemy is not set up on"
                " this app and SQLALCHEMY_DATABASE_URI is not set: set"
                " TOKENAUTH_DATABASE_URL, or call db.init_app(app)."
            )
        self.origin = "SQLALCHEMY_DATABASE_URI (Flask-SQLAlchemy is not set up)"
        return make_engine(
            resolve_like_flask_sqlalchemy(str(url), app.instance_path),
            self._settings.engine_options,
        )


def _names_a_database(config: Any) -> bool:
    return bool(config.get("SQLALCHEMY_DATABASE_URI") or config.get("SQLALCHEMY_BINDS"))


def _flask_sqlalchemy_engine(app: App) -> Engine:
    extension = app.extensions[FLASK_SQLALCHEMY_KEY]
    # ``engines`` is per app, read through the current app.
    with app.app_context():  # type: ignore[attr-defined]
        engines = extension.engines
    engine = engines.get(None)
    if not isinstance(engine, Engine):
        raise ConfigurationError(
            "Flask-SQLAlchemy has no default database on this app (only"
            " SQLALCHEMY_BINDS): set TOKENAUTH_DATABASE_URL, or"
            " SQLALCHEMY_DATABASE_URI."
        )
    return engine


def resolve_like_flask_sqlalchemy(url: str, instance_path: str) -> str:
    """``url`` with a relative SQLite path made relative to the instance
    folder (created if missing), as Flask-SQLAlchemy 3 does; other URLs as
    they are."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or database in (None, "", ":memory:"):
        return url
    assert database is not None
    uri = bool(parsed.query.get("uri"))
    path = database[len("file:") :] if uri else database
    if os.path.isabs(path):
        return url
    os.makedirs(instance_path, exist_ok=True)
    path = os.path.join(instance_path, path)
    resolved = parsed.set(database=f"file:{path}" if uri else path)
    return resolved.render_as_string(hide_password=False)


def _default_sqlite_url(app: App) -> str:
    """``instance/tokenauth.sqlite3``: the zero-configuration default."""
    os.makedirs(app.instance_path, exist_ok=True)
    return "sqlite:///" + os.path.join(app.instance_path, "tokenauth.sqlite3")
