"""``flask tokenauth ...``: operations commands.

``db upgrade|downgrade|current|stamp|history`` manage the tables; ``purge`` deletes dead
sessions; ``create-user``, ``sessions`` and ``revoke-sessions`` administer
users; ``keys generate|list|rotate|retire`` manage signing keys (see
:mod:`._cli_keys`); ``mail test`` sends a test mail (:mod:`._cli_mail`);
``mfa list|reset|rekey`` act on second factors (:mod:`._cli_mfa`);
``conformance`` reports the standards' requirements and the tests that
prove them (:mod:`._cli_conformance`).
Every command exits non-zero with a one-line message on bad input or an
unreachable database.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from . import _migrate
from ._cli_conformance import conformance_cli
from ._cli_keys import keys_cli
from ._cli_mail import mail_cli
from ._cli_mfa import mfa_cli
from ._cli_users import sub_of_login, users_cli
from ._db import describe_db_error
from ._sessions import active_sessions, purge, revoke_user_sessions
from ._state import TokenAuthState, get_state
from ._validation import check_password
from .errors import ConfigurationError, EmailTaken, TokenAuthError

tokenauth_cli = AppGroup("tokenauth", help="flask_tokenauth's operations commands.")


@tokenauth_cli.group("db")
def db_cli() -> None:
    """Manage flask_tokenauth's tables (its own Alembic history)."""


def _state() -> TokenAuthState:
    try:
        return get_state(current_app)
    except RuntimeError as e:
        raise click.ClickException(str(e)) from None


def _engine() -> Engine:
    return _state().db.engine


def _migrated_engine() -> Engine:
    """The engine, said on the terminal first (password masked): the
    database a migration runs on is chosen by the configuration (see
    ``_default_db.py``), and the operator should see which it was."""
    db = _state().db
    engine = db.engine
    url = engine.url.render_as_string(hide_password=True)
    click.echo(f"flask_tokenauth database: {url} ({db.origin})")
    return engine


@contextmanager
def _errors() -> Iterator[None]:
    """Alembic's errors (an unknown revision, a broken history), database
    and revocation-store outages: show the message, not a traceback."""
    from alembic.util import CommandError  # not at import: see _migrate.py

    try:
        yield
    except CommandError as e:
        raise click.ClickException(str(e)) from None
    except IntegrityError:
        raise  # the command's own to explain
    except DBAPIError as e:
        raise click.ClickException(
            f"Cannot use the database: {describe_db_error(e)}"
        ) from None
    except TokenAuthError as e:
        raise click.ClickException(e.to_dict()["error"]) from None


@db_cli.command("upgrade")
@click.argument("revision", default="head")
def upgrade(revision: str) -> None:
    """Upgrade the tables to REVISION (default: head)."""
    with _errors():
        _migrate.upgrade(_migrated_engine(), revision)
    click.echo(f"flask_tokenauth tables upgraded to {revision}.")


@db_cli.command("downgrade")
@click.argument("revision")
def downgrade(revision: str) -> None:
    """Downgrade the tables to REVISION ('base' drops them)."""
    with _errors():
        _migrate.downgrade(_migrated_engine(), revision)
    click.echo(f"flask_tokenauth tables downgraded to {revision}.")


@db_cli.command("current")
def current() -> None:
    """Show the tables' current revision."""
    with _errors():
        _migrate.current(_migrated_engine())


@db_cli.command("stamp")
@click.argument("revision", default="head")
def stamp(revision: str) -> None:
    """Mark the tables as at REVISION (default: head) without migrating.

    For tables that already match REVISION but were made without our
    migrations (e.g. by ``metadata.create_all``).
    """
    with _errors():
        _migrate.stamp(_migrated_engine(), revision)
    click.echo(f"flask_tokenauth tables stamped as {revision}.")


@db_cli.command("history")
def history() -> None:
    """List our migrations, the current one marked."""
    with _errors():
        _migrate.history(_migrated_engine())


@tokenauth_cli.command("purge")
@click.option(
    "--batch-size",
    default=1000,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Sessions deleted per transaction.",
)
def purge_command(batch_size: int) -> None:
    """Delete expired and revoked sessions and their refresh tokens.

    Run it regularly (e.g. daily from cron); the refresh-token table
    otherwise grows for ever.  Revoked sessions are kept until their access
    tokens have expired.
    """
    with _errors():
        count = purge(_state(), batch_size)
    click.echo(f"Purged {count} session(s).")


@tokenauth_cli.command("create-user")
@click.argument("login")
@click.password_option(help="The password (prompted for if not given).")
def create_user(login: str, password: str) -> None:
    """Create a user with the login identifier LOGIN (an email with the
    built-in users)."""
    state = _state()
    store = state.user_store
    try:
        normalized = store.normalize_login(login)
        check_password(password, state.settings, [normalized])
    except TokenAuthError as e:
        raise click.BadParameter(e.to_dict()["error"]) from None
    taken = click.ClickException(
        f"A user with {store.login_field} {normalized} exists."
    )
    with _errors():
        if store.find_by_login(normalized) is not None:
            raise taken
        try:
            user = store.create(normalized, password)
        except (IntegrityError, EmailTaken):
            raise taken from None
        except ConfigurationError as e:  # a host store without create=
            raise click.ClickException(str(e)) from None
    click.echo(f"Created user {store.sub_of(user)} <{normalized}>.")


#: Characters that can act on a terminal or hide text rather than show it:
#: controls (ESC, BEL, CR, ...), format characters (bidirectional overrides,
#: zero-width characters), surrogates, and line/paragraph separators.
_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def _printable(text: str) -> str:
    """``text`` with every unprintable character written as a Python escape
    (``\\x1b``, ``\\n``, ``\\u202e``), and backslashes doubled so an escape is never
    ambiguous.  User agents are whatever a client sent (and rows stored
    before they were cleaned may hold anything): printed raw, an escape
    sequence would reach the administrator's terminal."""
    out = []
    for char in text:
        if char == "\\":
            out.append("\\\\")
        elif unicodedata.category(char) in _UNPRINTABLE:
            out.append(ascii(char)[1:-1])  # '\\x1b', '\\n', '\\u202e'
        else:
            out.append(char)
    return "".join(out)


@tokenauth_cli.command("sessions")
@click.argument("login")
def list_sessions(login: str) -> None:
    """List the active sessions of the user with LOGIN (email, username...)."""
    state = _state()
    with _errors():
        sessions = active_sessions(state, sub_of_login(state, login))
    if not sessions:
        click.echo("No active sessions.")
    for session in sessions:
        click.echo(
            f"{session.id}  last used {session.last_used_at:%Y-%m-%d %H:%M:%S}Z"
            f"  from {_printable(session.ip_address or '?')}"
            f"  {_printable(session.user_agent or '')}"
        )


@tokenauth_cli.command("revoke-sessions")
@click.argument("login")
def revoke_sessions_command(login: str) -> None:
    """Log the user with LOGIN out everywhere, access tokens included."""
    state = _state()
    with _errors():
        revoked = revoke_user_sessions(sub_of_login(state, login))
    click.echo(f"Revoked {len(revoked)} session(s).")


tokenauth_cli.add_command(keys_cli)
tokenauth_cli.add_command(users_cli)
tokenauth_cli.add_command(mail_cli)
tokenauth_cli.add_command(mfa_cli)
tokenauth_cli.add_command(conformance_cli)
