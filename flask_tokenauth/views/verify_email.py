"""``/verify-email`` and ``/verify-email/resend``: the address-verification
flow (``TOKENAUTH_EMAIL_VERIFICATION`` ``optional`` or ``required``).

The link mailed at registration (and on request) carries a one-time token
of purpose ``verify`` (see :mod:`.._linktokens`) in its fragment; the page
it opens POSTs it here.  What a verified address changes (the store's
record, the sessions' ``email_verified`` claim) is :mod:`.._verification`'s,
shared with the other flows that prove an address.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import Response, jsonify

from .. import _linktokens, _outbox
from .. import _verification as verification
from .._ratelimit import mail_allowed
from .._state import get_state
from ..errors import LinkInvalid, NotFound
from ..globals import _get_user, authenticate_optional
from ..openapi._ops_mail import EMAIL, LINK_TOKEN
from ._common import accepted, allow, mail_flow

F = TypeVar("F", bound=Callable[..., Any])

#: The one answer of ``/verify-email/resend``, whatever the address.
RESEND_ANSWER = (
    "If that address has an account waiting for verification, a link is on its way"
)


def _verification_on(view: F) -> F:
    """``404 NOT_FOUND`` while verification is ``off``: before the mail
    limit that :func:`._common.mail_flow` counts (the endpoint does not
    exist, so nothing is counted)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not verification.is_on(get_state()):
            raise NotFound()
        return view(*args, **kwargs)

    return cast(F, wrapper)


@_verification_on
@mail_flow(None)
def verify_email() -> Response:
    """``{"token"}``: spend a verification token and record its address as
    verified, if it is still the account's address (a link dies when the
    address changes).  ``200 {"message", "email"}``; the user's sessions
    carry ``email_verified: true`` from their next refresh.

    :raises LinkInvalid: unknown, tampered, used, superseded, of another
        purpose, or for an address the account no longer has.
    :raises LinkExpired: genuine and unused, but past its lifetime.
    """
    allow("POST")
    state = get_state()
    store = state.user_store
    token = LINK_TOKEN.read()["token"]
    with state.db.begin() as conn:
        spent = _linktokens.spend(state.settings, conn, token, _linktokens.VERIFY)
        user = store.get(spent.user_id)
        if (
            user is None
            or not store.is_active(user)
            or store.email_of(user) != spent.email
        ):
            # Raised inside the transaction: the spend rolls back with it,
            # and the token, dead for good, answers the same next time.
            raise LinkInvalid()
        verification.mark_verified(state, conn, user, spent.email)
    verification.announce(state, user, spent.email)
    return jsonify(message="Email address verified", email=spent.email)


@_verification_on
@mail_flow(None)
def resend() -> Response:
    """Mail a new verification link (the older one stops working).

    With an access token: to the caller's own address (nothing if it is
    verified already).  Without one, ``{"email"}`` (a user of ``required``
    verification cannot log in to get a token): the address is looked up
    after the response, so the answer, its body, headers and time are the
    same whatever the address is (unknown, verified, disabled, limited).
    Either way ``202`` with the same body, and at most
    ``TOKENAUTH_RATELIMIT_MAIL_ADDRESS`` mails per address.
    """
    allow("POST")
    state = get_state()
    # A token that is sent but bad is a 401, as on any protected view.
    if authenticate_optional() is not None:
        user = _get_user()
        email = verification.needs_link(state, user)
        if email is not None and mail_allowed(_linktokens.VERIFY, email):
            verification.send_link(state, user, email)
        return accepted(RESEND_ANSWER)
    email = state.user_store.normalize_email(EMAIL.read()["email"])
    # Counted for any address, known or not: the limit tells nothing.
    if mail_allowed(_linktokens.VERIFY, email):
        _outbox.defer(_resend_to, email)
    return accepted(RESEND_ANSWER)


def _resend_to(email: str) -> None:
    """After the response: mail a link if ``email`` is the address of an
    active account that still needs one."""
    state = get_state()
    user = state.user_store.find_by_email(email)
    if verification.needs_link(state, user) == email:
        verification.send_link(state, user, email)
