"""``flask tokenauth mail test ADDRESS``: send one mail now, through the
app's sender, to see that the ``MAIL_*`` settings work before a user needs
a reset link."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup
from jinja2 import TemplateNotFound

from . import _mail
from ._state import get_state


@click.group("mail", cls=AppGroup)
def mail_cli() -> None:
    """The account mails: check the sender."""


@mail_cli.command("test")
@click.argument("address")
def send_test(address: str) -> None:
    """Send the test mail (``tokenauth/mail/test.*``) to ADDRESS now, not
    after a response, and say what the mail server answered."""
    try:
        state = get_state(current_app)
    except RuntimeError as e:
        raise click.ClickException(str(e)) from None
    try:
        message = _mail.render(
            "test", address, link=state.settings.link_base_url or "(no link)"
        )
    except TemplateNotFound as e:
        raise click.ClickException(
            f"Template {e.name} not found: register auth_bp on the app (it carries"
            " the mail templates), or add your own of that name."
        ) from None
    try:
        sender = _mail.sender_of(current_app)
        sender(message)
    except Exception as e:
        # The error only: the message is ours and holds no secret, but a
        # sender's error is the operator's clue.
        raise click.ClickException(
            f"The mail to {address} was not sent: {type(e).__name__}: {e}"
        ) from None
    click.echo(
        f"Sent to {address} by {getattr(sender, 'name', type(sender).__name__)}."
    )
