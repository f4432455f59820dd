"""``flask tokenauth ...``: operations on the extension's tables."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click
from alembic.util import CommandError
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from . import _migrate
from .extension import get_state

tokenauth_cli = AppGroup("tokenauth", help="flask_tokenauth's operations commands.")


@tokenauth_cli.group("db")
def db_cli() -> None:
    """Manage flask_tokenauth's tables (its own Alembic history)."""


def _engine() -> Engine:
    try:
        return get_state(current_app).db.engine
    except RuntimeError as e:
        raise click.ClickException(str(e)) from None


@contextmanager
def _alembic_errors() -> Iterator[None]:
    """Alembic's errors (an unknown revision, a broken history) are the
    user's to fix: show the message, not a traceback."""
    try:
        yield
    except CommandError as e:
        raise click.ClickException(str(e)) from None
    except DBAPIError as e:
        raise click.ClickException(f"Cannot use the database: {e.orig}") from None


@db_cli.command("upgrade")
@click.argument("revision", default="head")
def upgrade(revision: str) -> None:
    """Upgrade the tables to REVISION (default: head)."""
    with _alembic_errors():
        _migrate.upgrade(_engine(), revision)
    click.echo(f"flask_tokenauth tables upgraded to {revision}.")


@db_cli.command("downgrade")
@click.argument("revision")
def downgrade(revision: str) -> None:
    """Downgrade the tables to REVISION ('base' drops them)."""
    with _alembic_errors():
        _migrate.downgrade(_engine(), revision)
    click.echo(f"flask_tokenauth tables downgraded to {revision}.")


@db_cli.command("current")
def current() -> None:
    """Show the tables' current revision."""
    with _alembic_errors():
        _migrate.current(_engine())
