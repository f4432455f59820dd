"""``/forgot-password`` and ``/reset-password`` (see
docs/password-reset.md); the flow itself is :mod:`.._password_reset`."""

from __future__ import annotations

from flask import Response, jsonify

from .. import _outbox
from .._linktokens import RESET
from .._password_reset import mail_link, reset
from .._ratelimit import mail_allowed
from .._state import get_state
from ..openapi._ops_mail import EMAIL, RESET_PASSWORD
from ._common import accepted, allow, mail_flow

#: The one answer of ``/forgot-password``, whatever the address.
FORGOT_MESSAGE = (
    "If an account has this address, a link to reset its password is on its way"
)


@mail_flow("password_reset_enabled")
def forgot_password() -> Response:
    """``{"email"}``: ``202`` and the same body whatever the address (an
    account's, unknown, unverified, disabled, over its limit); a malformed
    one is a ``400``, as ``/register`` answers it.  Only the per-address
    limit is counted here (it needs the client's address for its signal,
    and is the same work whatever the address); the lookup, the token and
    the mail are done after the response, so its timing tells nothing
    either."""
    allow("POST")
    state = get_state()
    email = state.user_store.normalize_email(EMAIL.read()["email"])
    if mail_allowed(RESET, email):
        _outbox.defer(mail_link, state, email)
    return accepted(FORGOT_MESSAGE)


@mail_flow("password_reset_enabled")
def reset_password() -> Response:
    """``{"token", "password"}``: set the new password (checked as at
    registration), end every session and access token of the user, mail a
    notice; ``200 {"message"}``.  The user logs in with the new password.

    ``400 LINK_INVALID`` for a token that is not a live reset token (spent,
    tampered, another purpose's, its user disabled or its password changed
    since the mail), ``400 LINK_EXPIRED`` past its lifetime.
    """
    allow("POST")
    state = get_state()
    body = RESET_PASSWORD.read()
    reset(state, body["token"], body["password"])
    return jsonify(message="Password reset: log in with the new password")
