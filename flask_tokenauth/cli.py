"""``flask tokenauth ...``: operations commands.

``db upgrade|downgrade|current|stamp|history`` manage the tables; ``purge`` deletes dead
sessions; ``create-user``, ``sessions`` and ``revoke-sessions`` administer
users; ``keys generate`` makes a signing key, ``keys list|rotate|retire``
rotate the keys of a keys directory.  Every command exits non-zero
with a one-line message on bad input or an unreachable database.
"""

from __future__ import annotations

import json
import os
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup, ScriptInfo
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from . import _keys, _keysdir, _migrate
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


def _user_id(state: TokenAuthState, login: str) -> str:
    """The ``sub`` of the user with this login identifier (as the user store
    normalizes it)."""
    store = state.user_store
    try:
        normalized = store.normalize_login(login)
    except TokenAuthError as e:
        raise click.BadParameter(f"{login!r}: {e.to_dict()['error']}") from None
    user = store.find_by_login(normalized)
    if user is None:
        raise click.ClickException(f"No user with {store.login_field} {normalized}.")
    return store.sub_of(user)


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
        check_password(password, state.settings)
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
        sessions = active_sessions(state, _user_id(state, login))
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
        revoked = revoke_user_sessions(_user_id(state, login))
    click.echo(f"Revoked {len(revoked)} session(s).")


@tokenauth_cli.group("keys")
def keys_cli() -> None:
    """Signing keys for access tokens (TOKENAUTH_SIGNING_KEY)."""


@keys_cli.command("generate", with_appcontext=False)
@click.option(
    "--alg",
    "algorithm",
    type=click.Choice(_keys.ASYMMETRIC_ALGORITHMS),
    default="EdDSA",
    show_default=True,
    help="The algorithm the key is pinned to.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["pem", "jwk"]),
    default="pem",
    show_default=True,
    help="PKCS#8 PEM, or a JWK that also records the kid and the algorithm.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write the key to this new file (mode 0600) instead of printing it.",
)
def generate_key(algorithm: str, output_format: str, out: Path | None) -> None:
    """Generate a private signing key.

    Point TOKENAUTH_SIGNING_KEY at the file (or set it to the text).  The
    key id it will carry (its RFC 7638 thumbprint, or the JWK's kid) is
    printed on stderr, with the algorithm.
    """
    key = _keys.SigningKey.load(_keys.generate(algorithm), "the new key", private=True)
    if output_format == "pem":
        text = _keys.private_pem(key.signer)
    else:
        text = json.dumps(_keys.private_jwk(key), indent=2) + "\n"
    if out is None:
        click.echo(text, nl=False)
    else:
        try:
            # O_EXCL: never overwrite a key; 0600: a private key.
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise click.ClickException(
                f"{out} exists; not overwriting a key."
            ) from None
        except OSError as e:
            raise click.ClickException(f"Cannot write {out}: {e.strerror}.") from None
        with os.fdopen(fd, "w") as file:
            file.write(text)
    click.echo(f"Generated an {algorithm} key, kid {key.kid}.", err=True)


_dir_option = click.option(
    "--dir",
    "directory",
    envvar="TOKENAUTH_KEYS_DIR",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The keys directory (default: $TOKENAUTH_KEYS_DIR).",
)


def _entries(directory: Path) -> dict[str, _keysdir.KeyEntry]:
    try:
        return _keysdir.read_state(directory)
    except ConfigurationError as e:
        raise click.ClickException(str(e)) from None


def _token_lifetime() -> timedelta:
    """``exp - iat`` of the app's access tokens (with the leeway), or the
    default lifetime when the app cannot be loaded."""
    info = click.get_current_context().find_object(ScriptInfo)
    try:
        settings = get_state(info.load_app()).settings  # type: ignore[union-attr]
    except Exception:  # no app, or one that does not start: the default
        return timedelta(minutes=15)
    return settings.access_expires + settings.leeway


@keys_cli.command("list", with_appcontext=False)
@_dir_option
def list_keys(directory: Path) -> None:
    """List the keys of the directory: kid, algorithm, state, created."""
    for entry in _entries(directory).values():
        path = _keysdir.key_file(directory, entry.kid)
        try:
            alg = _keys.SigningKey.load(path, entry.kid).algorithm if path else "?"
        except ConfigurationError:
            alg = "?"  # e.g. encrypted: list what the state file says
        until = (
            f"  signed until {entry.signed_until:%Y-%m-%d %H:%M:%S}Z"
            if entry.signed_until
            else ""
        )
        click.echo(
            f"{entry.kid}  {alg}  {entry.state}  created"
            f" {entry.created:%Y-%m-%d %H:%M:%S}Z{until}"
        )


@keys_cli.command("rotate", with_appcontext=False)
@_dir_option
@click.option(
    "--publish",
    is_flag=True,
    help="Step 1: add a new 'next' key (published, not signing yet).",
)
@click.option(
    "--alg",
    "algorithm",
    type=click.Choice(_keys.ASYMMETRIC_ALGORITHMS),
    default="EdDSA",
    show_default=True,
    help="The algorithm of the key --publish adds.",
)
def rotate_keys(directory: Path, publish: bool, algorithm: str) -> None:
    """Rotate the signing key, in two steps.

    'keys rotate --publish' adds a next key: every process publishes it in
    its JWKS and accepts its tokens (the first key of a new directory signs
    at once).  Once the JWKS caches of other services have expired
    (TOKENAUTH_JWKS_MAX_AGE), 'keys rotate' makes the next key the signing
    key and the signing key 'previous': it still verifies until 'keys
    retire'.
    """
    now = datetime.now(timezone.utc)
    if publish:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        exists = (directory / _keysdir.STATE_FILE).exists()
        entries = _entries(directory) if exists else {}
        key = _keys.SigningKey.load(
            _keys.generate(algorithm), "the new key", private=True
        )
        path = directory / f"{key.kid}.pem"
        # O_EXCL: never overwrite a key; 0600: a private key.  Written
        # before the state that names it.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(_keys.private_pem(key.signer))
            file.flush()
            os.fsync(file.fileno())
        state = "next" if entries else "signing"
        entries[key.kid] = _keysdir.KeyEntry(key.kid, state, now)
        _keysdir.write_state(directory, entries)
        click.echo(f"Published an {algorithm} key, kid {key.kid}, as {state}.")
        return
    entries = _entries(directory)
    upcoming = sorted(
        (e for e in entries.values() if e.state == "next"), key=lambda e: e.created
    )
    if not upcoming:
        raise click.ClickException(
            "No next key to sign with: run 'flask tokenauth keys rotate --publish'"
            " first."
        )
    new = upcoming[0]
    for entry in list(entries.values()):
        if entry.state == "signing":
            entries[entry.kid] = _keysdir.KeyEntry(
                entry.kid, "previous", entry.created, now
            )
    entries[new.kid] = _keysdir.KeyEntry(new.kid, "signing", new.created)
    _keysdir.write_state(directory, entries)
    click.echo(f"Now signing with {new.kid}.")


@keys_cli.command("retire", with_appcontext=False)
@_dir_option
@click.argument("kid")
@click.option(
    "--force",
    is_flag=True,
    help="Retire it even if tokens it signed may still be valid.",
)
def retire_key(directory: Path, kid: str, force: bool) -> None:
    """Stop accepting and publishing the previous key KID."""
    entries = _entries(directory)
    entry = entries.get(kid)
    if entry is None:
        raise click.ClickException(f"No key {kid!r} in {directory}.")
    if entry.state == "signing":
        raise click.ClickException(
            f"{kid} is the signing key: run 'flask tokenauth keys rotate' first."
        )
    if entry.state == "retired":
        raise click.ClickException(f"{kid} is already retired.")
    if entry.signed_until is not None and not force:
        safe = entry.signed_until + _token_lifetime()
        if datetime.now(timezone.utc) < safe:
            raise click.ClickException(
                f"Tokens signed by {kid} are valid until {safe:%Y-%m-%d %H:%M:%S}Z"
                " (the access-token lifetime); retire it after that, or pass"
                " --force to log their holders out."
            )
    entries[kid] = _keysdir.KeyEntry(kid, "retired", entry.created, entry.signed_until)
    _keysdir.write_state(directory, entries)
    click.echo(f"Retired {kid}.")
