"""Running the Alembic migrations that ship with the package.

In a wheel the top-level ``alembic/`` folder is installed as the package
``flask_tokenauth.migrations``; in a repository checkout (or a non-strict
editable install, which does not expose that mapping) the folder is used
where it lies.
"""

from __future__ import annotations

import sys
from importlib import util
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

#: Our own version table, so our history never collides with the host app's.
VERSION_TABLE = "tokenauth_alembic_version"


def script_location() -> str:
    """The folder that holds ``env.py`` and ``versions/``."""
    spec = util.find_spec("flask_tokenauth.migrations")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            if (Path(location) / "env.py").is_file():
                return str(location)
    checkout = Path(__file__).resolve().parent.parent / "alembic"
    if (checkout / "env.py").is_file():
        return str(checkout)
    raise RuntimeError(
        "flask_tokenauth's migration scripts are missing from this install."
    )


def alembic_config(engine: Engine) -> Config:
    """An Alembic config that runs our migrations on ``engine``."""
    # Alembic's default ``stdout`` is bound when alembic is imported; pass the
    # one in place now, so ``current`` prints where click (and its test
    # runner) expects.
    config = Config(stdout=sys.stdout)
    config.set_main_option("script_location", script_location())
    # Only read in offline mode; ConfigParser interpolation needs the ``%``
    # of URL-escaped passwords (``p%40ss``) doubled.
    url = engine.url.render_as_string(hide_password=False)
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    command.downgrade(alembic_config(engine), revision)


def current(engine: Engine) -> None:
    command.current(alembic_config(engine), verbose=False)


def stamp(engine: Engine, revision: str = "head") -> None:
    """Record ``revision`` as applied without running anything: for tables
    made some other way (``metadata.create_all``, a dump) that already match
    it, so a later ``upgrade`` starts from there instead of failing on
    tables that exist."""
    command.stamp(alembic_config(engine), revision)


def history(engine: Engine) -> None:
    command.history(alembic_config(engine), indicate_current=True)
