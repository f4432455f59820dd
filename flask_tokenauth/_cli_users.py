"""``flask tokenauth users ...``: support staff's commands on one account
of the mail flows (mark an address verified, print a reset link)."""

from __future__ import annotations

from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy.exc import DBAPIError

from . import _linktokens
from . import _verification as verification
from ._db import describe_db_error
from ._password_reset import issue_link
from ._state import TokenAuthState, get_state
from .errors import TokenAuthError


@click.group("users", cls=AppGroup)
def users_cli() -> None:
    """Accounts: verify an address, make a reset link."""


def cli_state() -> TokenAuthState:
    """The app's extension state, or a click error saying why not (shared
    by the command groups of single accounts: ``users``, ``mfa``)."""
    try:
        return get_state(current_app)
    except RuntimeError as e:
        raise click.ClickException(str(e)) from None


def sub_of_login(state: TokenAuthState, login: str) -> str:
    """The ``sub`` of the user with this login identifier (as the user
    store normalizes it), for the commands that name a user by login.

    :raises click.BadParameter: a login the store refuses.
    :raises click.ClickException: no such user.
    """
    store = state.user_store
    try:
        normalized = store.normalize_login(login)
    except TokenAuthError as e:
        raise click.BadParameter(f"{login!r}: {e.to_dict()['error']}") from None
    user = store.find_by_login(normalized)
    if user is None:
        raise click.ClickException(f"No user with {store.login_field} {normalized}.")
    return store.sub_of(user)


def _user_by_email(state: TokenAuthState, email: str) -> tuple[Any, str]:
    """The user whose address is ``email`` and that address, normalized.

    :raises click.ClickException: a store without addresses, a malformed
        address, or no such user.
    """
    store = state.user_store
    if not store.has_email:
        raise click.ClickException(
            "The user store has no addresses: give SQLAlchemyUserStore an email=."
        )
    try:
        normalized = store.normalize_email(email)
    except TokenAuthError as e:
        raise click.ClickException(e.to_dict()["error"]) from None
    user = store.find_by_email(normalized)
    if user is None:
        raise click.ClickException(f"No user with the address {normalized}.")
    return user, store.email_of(user) or normalized


@users_cli.command("verify")
@click.argument("email")
def verify_command(email: str) -> None:
    """Mark EMAIL verified, as its verification link would (for a user who
    cannot receive or open it).  The user's sessions carry
    ``email_verified: true`` from their next refresh; links still out stop
    working."""
    state = cli_state()
    try:
        user, address = _user_by_email(state, email)
        if state.user_store.is_email_verified(user):
            click.echo(f"{address} is already verified.")
            return
        with state.db.begin() as conn:
            verification.mark_verified(state, conn, user, address)
            _linktokens.revoke(
                conn, state.user_store.sub_of(user), [_linktokens.VERIFY]
            )
    except DBAPIError as e:
        raise click.ClickException(
            f"Cannot use the database: {describe_db_error(e)}"
        ) from None
    verification.announce(state, user, address)
    click.echo(f"{address} is now verified.")


# -- Password reset ----------------------------------------------------------


@users_cli.command("reset-link")
@click.argument("email")
def reset_link_command(email: str) -> None:
    """Print a password-reset link for the account with address EMAIL.

    For support staff, to hand to the user over a channel they trust (the
    link sets the account's password).  It works once, for
    TOKENAUTH_RESET_PASSWORD_EXPIRES, as a mailed one; it is printed, never
    logged.
    """
    state = cli_state()
    if not state.settings.password_reset_enabled:
        raise click.ClickException(
            "Password reset is off (TOKENAUTH_PASSWORD_RESET_ENABLED, or no mail"
            " set up): /reset-password would answer 404."
        )
    try:
        user, address = _user_by_email(state, email)
        if not state.user_store.is_active(user):
            raise click.ClickException(
                f"The user with the address {address} is disabled: its link"
                " would be refused."
            )
        issued, link = issue_link(state, user, address)
    except TokenAuthError as e:  # the database is down, not migrated...
        raise click.ClickException(e.to_dict()["error"]) from None
    click.echo(link)
    click.echo(f"Valid once, until {issued.expires_at:%Y-%m-%d %H:%M} UTC.", err=True)
