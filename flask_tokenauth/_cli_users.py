"""``flask tokenauth users ...``: support staff's commands on one account
of the mail flows (mark an address verified, print a reset link)."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from ._password_reset import issue_link
from ._state import get_state
from .errors import TokenAuthError


@click.group("users", cls=AppGroup)
def users_cli() -> None:
    """Accounts: verify an address, make a reset link."""


# -- Password reset ----------------------------------------------------------


@users_cli.command("reset-link")
@click.argument("email")
def reset_link(email: str) -> None:
    """Print a password-reset link for the account with address EMAIL.

    For support staff, to hand to the user over a channel they trust (the
    link sets the account's password).  It works once, for
    TOKENAUTH_RESET_PASSWORD_EXPIRES, as a mailed one; it is printed, never
    logged.
    """
    state = get_state(current_app)
    store = state.user_store
    if not state.settings.password_reset_enabled or not store.has_email:
        raise click.ClickException(
            "Password reset is off (TOKENAUTH_PASSWORD_RESET_ENABLED, mail, or a"
            " user store without addresses): /reset-password would answer 404."
        )
    try:
        normalized = store.normalize_email(email)
    except TokenAuthError as e:
        raise click.BadParameter(f"{email!r}: {e.to_dict()['error']}") from None
    try:
        user = store.find_by_email(normalized)
        if user is None:
            raise click.ClickException(f"No user with the address {normalized}.")
        if not store.is_active(user):
            raise click.ClickException(
                f"The user with the address {normalized} is disabled: its link"
                " would be refused."
            )
        issued, link = issue_link(state, user, normalized)
    except TokenAuthError as e:  # the database is down, not migrated...
        raise click.ClickException(e.to_dict()["error"]) from None
    click.echo(link)
    click.echo(f"Valid once, until {issued.expires_at:%Y-%m-%d %H:%M} UTC.", err=True)
