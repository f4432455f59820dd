"""Enumeration-safe registration (``TOKENAUTH_REGISTER_ENUMERATION_SAFE``,
see "Enumeration-safe registration" in docs/verification.md): ``/register`` answers
a taken login exactly as a new one, and mails the owner instead.

A new registration's usual answer (``201``, the user's id, an access token,
a refresh cookie and a device cookie) cannot be given to a taken login
without giving a session to whoever typed it, and its absence would tell.
So in this mode every registration that passes the checks of the request
itself (the body, the password policy, the rate limits: none of them looks
at accounts) is answered ``202 {"message"}``, with no cookie and no token,
and the rest happens after the response (:func:`.._outbox.defer`): the
lookup, the new account or the owner's mail.  The answer's status, body,
headers and timing are the same for both.  The new user then logs in (or
verifies the address first, when verification is ``required``).
"""

from __future__ import annotations

from typing import Any

from flask import Response, current_app
from sqlalchemy.exc import IntegrityError

from .. import _outbox, signals
from .. import _verification as verification
from .._mail import send_mail
from .._ratelimit import MAIL, check, mail_allowed
from .._state import TokenAuthState
from ..errors import EmailTaken
from ._common import accepted

#: The ``purpose`` of the per-address limit of these mails.
PURPOSE = "register"
#: The one answer, new login or taken.
MESSAGE = "Registration received: check your mailbox, then log in"


def _app() -> Any:
    return current_app._get_current_object()  # type: ignore[attr-defined]


def register(state: TokenAuthState, login: str, password: str) -> Response:
    """The ``202`` of ``/register`` for ``login`` (normalized) and
    ``password`` (checked against the policy); the account or the owner's
    mail after the response.

    The per-client limit of mail endpoints and the per-address limit of
    this mail are counted here, for every login alike."""
    check(MAIL)
    allowed = mail_allowed(PURPOSE, login)
    _outbox.defer(create_or_mail, state, login, password, allowed)
    return accepted(MESSAGE)


def create_or_mail(
    state: TokenAuthState, login: str, password: str, allowed: bool
) -> None:
    """After the response: create the account (and mail its verification
    link while verification is on), or mail the owner of the login that it
    has one (``registration_taken``); a mail only if ``allowed`` by the
    per-address limit.  A concurrent registration that wins the race is a
    taken login too."""
    store = state.user_store
    user = store.find_by_login(login)
    if user is None:
        try:
            with state.db.begin() as conn:
                user = store.create(login, password, conn)
                # The verification link, as /register mails it (see there).
                link = verification.link_for_new_user(state, conn, user)
        except (IntegrityError, EmailTaken):
            user = store.find_by_login(login)
        else:
            named: dict[str, Any] = {store.login_field: login}
            signals.user_registered.send(
                _app(), user_id=store.user_id(store.sub_of(user)), **named
            )
            if link is not None and allowed:
                verification.mail_link(state, user, *link)
            return
        if user is None:  # created and deleted in between: nothing to tell
            return
    email = store.email_of(user)
    signals.registration_taken.send(
        _app(), user_id=store.user_id(store.sub_of(user)), email=email
    )
    if email is not None and allowed:
        send_mail("registration_taken", email, email=email)
