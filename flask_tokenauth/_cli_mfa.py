"""``flask tokenauth mfa ...``: support staff's commands on a user's second
factors (``list``, ``reset``), and ``rekey`` after
``TOKENAUTH_REFRESH_SECRET`` changed (see :mod:`._factor_crypto`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy.exc import DBAPIError

from . import _mfa_status as mfa_status
from . import _totp as totp
from . import signals
from ._cli_users import cli_state, sub_of_login
from ._db import describe_db_error
from ._secrets import parse_secret
from ._sessions import announce_revoked, revoke_in
from .errors import ConfigurationError, TokenAuthError


@click.group("mfa", cls=AppGroup)
def mfa_cli() -> None:
    """Second factors: show or reset a user's, re-encrypt secrets."""


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except DBAPIError as e:
        raise click.ClickException(
            f"Cannot use the database: {describe_db_error(e)}"
        ) from None
    except TokenAuthError as e:
        raise click.ClickException(e.to_dict()["error"]) from None


@mfa_cli.command("list")
@click.argument("login")
def list_command(login: str) -> None:
    """Show the second factors of the user with LOGIN."""
    state = cli_state()
    with _errors():
        sub = sub_of_login(state, login)
        with state.db.begin() as conn:
            found = mfa_status.summary(conn, sub)
    confirmed = found["totp"]["confirmedAt"]
    click.echo(f"Authenticator app: {'since ' + confirmed if confirmed else 'none'}")
    click.echo(f"Passkeys: {found['passkeys']}")
    click.echo(f"Recovery codes left: {found['recoveryCodesLeft']}")


@mfa_cli.command("reset")
@click.argument("login")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def reset_command(login: str, yes: bool) -> None:
    """Remove every second factor of the user with LOGIN (authenticator app,
    passkeys, recovery codes) and log them out everywhere.

    For a user who lost every factor, once support staff have confirmed who
    they are: they sign in with their password alone and enrol again.
    """
    state = cli_state()
    with _errors():
        sub = sub_of_login(state, login)
        if not yes:
            click.confirm(
                f"Remove every second factor of {login} and end their sessions?",
                abort=True,
            )
        # One transaction: no state where the factors are gone and a session
        # that passed one of them lives on, or the other way round.
        with state.db.begin() as conn:
            removed = mfa_status.remove_all(conn, sub)
            revoked = revoke_in(state, conn, sub, cutoff=True)
        announce_revoked(state, sub, revoked, "mfa-reset")
    signals.mfa_reset.send(
        current_app._get_current_object(),  # type: ignore[attr-defined]
        user_id=state.user_store.user_id(sub),
    )
    click.echo(
        f"Removed {removed['totp']} authenticator app(s), {removed['passkeys']}"
        f" passkey(s), {removed['recoveryCodes']} recovery code(s); revoked"
        f" {len(revoked)} session(s)."
    )


@mfa_cli.command("rekey")
@click.option(
    "--previous-secret-env",
    default="TOKENAUTH_PREVIOUS_REFRESH_SECRET",
    show_default=True,
    help="The environment variable holding the previous TOKENAUTH_REFRESH_SECRET"
    " (never on the command line, which other users of the machine can see).",
)
def rekey_command(previous_secret_env: str) -> None:
    """Re-encrypt the authenticator-app secrets stored under the previous
    TOKENAUTH_REFRESH_SECRET with the current one.  Run it right after
    deploying a new secret: until then those users' codes are refused."""
    state = cli_state()
    raw = os.environ.get(previous_secret_env)
    if not raw:
        raise click.ClickException(
            f"Set {previous_secret_env} to the previous TOKENAUTH_REFRESH_SECRET."
        )
    try:
        previous = parse_secret(raw, previous_secret_env)
    except ConfigurationError as e:  # says what is wrong
        raise click.ClickException(str(e)) from None
    with _errors(), state.db.begin() as conn:
        done, left = totp.rekey(conn, previous, state.settings.refresh_secret)
    click.echo(f"Re-encrypted {done} secret(s).")
    if left:
        click.echo(
            f"{left} secret(s) are under neither key and were left as they are.",
            err=True,
        )
