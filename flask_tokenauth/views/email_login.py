"""Sign in by email (``TOKENAUTH_EMAIL_LOGIN_ENABLED``, off by default):
``POST /email-login`` mails a one-time link and a 6-digit code, and
``POST /email-login/verify`` spends either one and starts an ordinary
session, answered exactly as ``/login`` answers.

Both are built on the shared one-time tokens (:mod:`.._linktokens`,
purpose ``login``, one row holding the link's secret and the code) and the
one sender (:mod:`.._mail`); see docs/email-login.md for the
guessing budget and what is decided where.

Enumeration: ``/email-login`` validates the body, counts the per-address
limit (the same work for any address) and answers ``202``; the lookup, the
token and the mail are made after the response.  An address with no
active account gets a *decoy* row instead of a mailed one: a code nobody
knows, under a ``sub`` no user has.  So ``/email-login/verify`` with an
address and a wrong code does the same work (an HMAC, the attempt counted
and committed) whether or not the address has an account, and its timing
tells nothing either.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Response, current_app
from sqlalchemy import Connection

from .. import _identity as bound_identity
from .. import _linktokens as linktokens
from .. import _lockout as lockout
from .. import _outbox, signals
from .._linktokens import LOGIN, Spent
from .._mail import send_mail
from .._ratelimit import mail_allowed
from .._refresh import IssuedToken
from .._session_start import session_response as _session_response
from .._session_start import start_family as _start_family
from .._sessions import announce_revoked, revoke_in
from .._state import TokenAuthState, get_state
from .._verification import announce, mark_verified
from ..errors import CodeInvalid, LinkInvalid, ValidationError
from ..openapi._ops_mail import EMAIL, EMAIL_LOGIN_VERIFY
from ._common import accepted, allow, mail_flow

#: The ``amr`` claim of the access token an email sign-in answers with
#: (RFC 8176 has no value for "proved a mailbox"; ``email`` says it).
AMR = ["email"]
#: The body of every ``202`` of ``/email-login``, whatever the address.
MESSAGE = (
    "If an account exists for this address, a sign-in link and code have been"
    " sent to it"
)
#: Separators a user may type or paste inside a code (``123 456``,
#: ``123-456``); removed before the code is checked.
_CODE_SEPARATORS = str.maketrans("", "", " -\u00a0")
#: The ``sub`` prefix of decoy rows; no store's ids start with it.
_DECOY = "~decoy:"


def _app() -> Any:
    return current_app._get_current_object()  # type: ignore[attr-defined]


def _decoy_sub(email: str) -> str:
    """The ``sub`` of an address's decoy rows: one per address (so that a
    decoy supersedes only the address's own), with no address in it."""
    return _DECOY + hashlib.sha256(email.encode()).hexdigest()[:40]


# -- POST /email-login ---------------------------------------------------------


@mail_flow("email_login_enabled")
def request_login() -> Response:
    """Mail a sign-in link and code to ``email`` if it has an active
    account: ``202`` with the same body, whatever the address."""
    allow("POST")
    state = get_state()
    email = state.user_store.normalize_email(EMAIL.read()["email"])
    # Counted for any address, before anything is known about it; a spent
    # limit answers as usual and sends nothing (signal ``mail_limited``).
    if mail_allowed(LOGIN, email):
        _outbox.defer(_send_login, email)
    return accepted(MESSAGE)


def _send_login(email: str) -> None:
    """After the response: the lookup, the token (or a decoy) and the mail."""
    state = get_state()
    settings = state.settings
    store = state.user_store
    user = store.find_by_email(email)
    active = (
        user is not None and store.is_active(user) and store.email_of(user) == email
    )
    sub = store.sub_of(user) if active else _decoy_sub(email)
    with state.db.begin() as conn:
        # Supersede: only the newest link and code of the user work.
        issued = linktokens.issue(
            settings,
            conn,
            LOGIN,
            sub,
            email,
            settings.email_login_expires,
            code=True,
            supersede=True,
        )
    if not active:
        # Nobody is mailed: a stranger's address gets no "no account" mail
        # that an attacker could make us send to anyone.
        signals.email_login_unknown.send(_app(), email=email)
        return
    send_mail(
        "email_login",
        email,
        link=linktokens.link(settings, settings.email_login_url, issued.token),
        code=issued.code,
        minutes=int(settings.email_login_expires.total_seconds() // 60),
        email=email,
    )
    signals.email_login_requested.send(_app(), user_id=store.user_id(sub), email=email)


# -- POST /email-login/verify --------------------------------------------------


@dataclass(frozen=True)
class _SignIn:
    """A session just started by an email sign-in."""

    user: Any
    issued: IssuedToken
    #: The address the mail went to, if it was not verified before.
    verified_now: str | None


@mail_flow("email_login_enabled")
def verify() -> Response:
    """Spend ``{token}`` (the link) or ``{email, code}`` and start a session:
    ``200 {user, accessToken}`` and the refresh cookie, as ``/login``.

    A user gone, disabled or with another address since the mail is
    refused as a wrong link or code is; the token is spent all the same.
    """
    allow("POST")
    state = get_state()
    body = EMAIL_LOGIN_VERIFY.read()
    if body.get("token") is not None:
        token: str = body["token"]
        result = _sign_in(
            state,
            lambda conn: linktokens.spend(state.settings, conn, token, LOGIN),
            LinkInvalid,
        )
    elif body.get("email") is not None or body.get("code") is not None:
        # The shape of ``one_of`` taken: ``read()`` required both in it and
        # checked that they are strings.
        email = state.user_store.normalize_email(body["email"])
        code = str(body["code"]).translate(_CODE_SEPARATORS)
        if not code.isascii():
            raise CodeInvalid()
        result = _sign_in(
            state,
            lambda conn: linktokens.spend_code(
                state.settings,
                conn,
                email,
                code,
                purpose=LOGIN,
                max_attempts=state.settings.email_login_attempts,
            ),
            CodeInvalid,
        )
    else:
        raise ValidationError("'token', or 'email' and 'code', are required")
    return _respond(state, result)


def _sign_in(
    state: TokenAuthState,
    spend: Callable[[Connection], Spent | None],
    refusal: type[LinkInvalid] | type[CodeInvalid],
) -> _SignIn:
    """Spend the token, check its user, record the address as verified,
    then start the session.

    The spend is committed first, whatever follows: a wrong code's attempt
    counts though the request is refused, and a token of a user refused is
    spent.  The user is looked up between transactions, so no request
    holds one pooled connection while it waits for another.
    """
    with state.db.begin() as conn:
        spent = spend(conn)
    user = None if spent is None else _user_of(state, spent)
    if spent is None or user is None:
        raise refusal()
    store = state.user_store
    verified_now = None
    if not store.is_email_verified(user):
        # Whoever read the mail controls the mailbox: the address is proved
        # as a verification link proves it.  Committed before the session
        # starts, so that the session reads it as any session would.
        # Every earlier session ends with it: they were started by someone
        # who had the password only, maybe not the owner of the address
        # (account pre-hijacking: registered with the victim's address
        # before the victim, and kept signed in).
        sub = store.sub_of(user)
        with state.db.begin() as conn:
            mark_verified(state, conn, user, spent.email)
            revoked = revoke_in(state, conn, sub, cutoff=True)
        announce_revoked(state, sub, revoked, "email-verified")
        verified_now = spent.email
        # Read again: the object predates the mark, and the session's
        # ``email_verified`` claim is read from it.
        user = store.get(store.sub_of(user)) or user
    with state.db.begin() as conn:
        issued = _start_family(
            state,
            conn,
            store.sub_of(user),
            identity=bound_identity.of_user(state, user),
            user=user,
            methods=AMR,
        )
    return _SignIn(user, issued, verified_now)


def _user_of(state: TokenAuthState, spent: Spent) -> Any | None:
    """The token's user, if it may sign in: still there, active, and still
    at the address the token was mailed to."""
    store = state.user_store
    if spent.user_id.startswith(_DECOY):
        return None
    user = store.get(spent.user_id)
    if user is None or not store.is_active(user) or store.email_of(user) != spent.email:
        return None
    return user


def _respond(state: TokenAuthState, result: _SignIn) -> Response:
    store = state.user_store
    user, issued = result.user, result.issued
    response = _session_response(state, user, 200, issued)
    # The client proved the mailbox: as good as the password for the
    # wrong-password limits (see _lockout), so it is a known device now.
    account = lockout.account_of(store, user, store.login_of(user))
    lockout.trust_device(response, state, account)
    if result.verified_now is not None:
        announce(state, user, result.verified_now)
    signals.login_succeeded.send(
        _app(),
        user_id=store.user_id(issued.user_id),
        session_id=issued.family_id,
        method="email",
    )
    return response
