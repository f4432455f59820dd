"""``flask tokenauth users ...``: support staff's commands on one account
of the mail flows (mark an address verified, print a reset link)."""

from __future__ import annotations

import click
from flask.cli import AppGroup


@click.group("users", cls=AppGroup)
def users_cli() -> None:
    """Accounts: verify an address, make a reset link."""
