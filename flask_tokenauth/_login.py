"""``login_user``: start a session for a user the app authenticated itself
(its own login form, an OAuth callback, SSO).

Shaped after Flask-Login's ``login_user(user)``, which the app calls once it
knows who the user is, and Flask-JWT-Extended's ``create_access_token`` /
``set_refresh_cookies``: it returns the access token for the app to hand to
its client, and the refresh cookie goes on the response the view returns.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from typing import Any

from flask import Response, after_this_request, current_app, request

from . import _identity as bound_identity
from . import signals
from ._headers import set_refresh_cookie
from ._session_start import start_family as _start_family
from ._state import TokenAuthState, get_state
from .views.auth import refresh_paths


def login_user(
    user: Any,
    response: Response | None = None,
    *,
    amr: Sequence[str] = ("pwd",),
    aal: int = 1,
) -> str:
    """Start a session for ``user``: a session row and its refresh token,
    the refresh cookie, and an access token, which is returned.

    Call it in a request (the session records the client's user agent and
    address) of any view of the app, once the app has authenticated the user
    its own way::

        @app.post("/sso/callback")
        def sso_callback():
            user = find_user(verify_sso_assertion(request.form))
            access_token = login_user(user)
            return {"accessToken": access_token}

    With ``TOKENAUTH_EMAIL_VERIFICATION = "required"`` it starts the
    session even for a user whose address is not verified (``/login``
    refuses that one): the app vouched for the user its own way (an OAuth
    or SSO provider may have verified the address).  The session's tokens
    carry ``email_verified: false``, which ``@login_required(verified=True)``
    refuses; to refuse at login, test
    :func:`~flask_tokenauth.is_email_verified` first.

    :param user: a user of the user store (the host's model object with
        :class:`~flask_tokenauth.userstore.SQLAlchemyUserStore`), or its id.
    :param response: set the refresh cookie on this response; by default it
        is set on the response the view returns (``after_this_request``).
    :param amr: how the app authenticated the user (RFC 8176 values, the
        tokens' ``amr`` claim): a password by default.
    :param aal: the level that proves (the ``aal`` claim).  Below 2, a user
        who has a second factor gets a session that waits for it (its
        tokens answer ``401 MFA_REQUIRED`` until ``/mfa/verify``), as after
        ``/login``; an SSO that did its own second factor says
        ``amr=["pwd", "otp", "mfa"], aal=2``.
    :raises LookupError: the user store knows no such active user.
    :raises ValueError: ``user`` is an id the user store refuses (``"01"``
        for an integer key; a UUID may be given in any form ``uuid.UUID``
        parses).
    :raises RuntimeError: the cookie's path cannot be told: the blueprint is
        not registered, or is registered more than once (set
        ``TOKENAUTH_COOKIE_PATH``).
    """
    state = get_state()
    store = state.user_store
    sub = store.to_sub(user)
    if isinstance(user, (str, int, uuid.UUID)):
        user = store.get(sub)
    if user is None or not store.is_active(user):
        raise LookupError(f"login_user: no active user {sub!r} in the user store")
    # The cookie belongs to the blueprint's endpoints, not to this view.
    settings = dataclasses.replace(state.settings, cookie_path=_cookie_path(state))
    identity = bound_identity.of_user(state, user)
    with state.db.begin() as conn:
        issued = _start_family(
            state, conn, sub, identity=identity, user=user, methods=amr, aal=aal
        )
    access = state.access_tokens.issue(
        sub,
        issued.family_id,
        user=user,
        identity=identity,
        email_verified=issued.email_verified,
        assurance=issued.assurance,
    )

    def set_cookie(target: Response) -> Response:
        set_refresh_cookie(target, settings, issued.token, issued.expires_at)
        return target

    if response is not None:
        set_cookie(response)
    else:
        after_this_request(set_cookie)
    signals.login_succeeded.send(
        current_app._get_current_object(),  # type: ignore[attr-defined]
        user_id=store.user_id(sub),
        session_id=issued.family_id,
        method=None,  # the app's own login: it knows how
    )
    return access


def _cookie_path(state: TokenAuthState) -> str:
    """``TOKENAUTH_COOKIE_PATH``, or the path the blueprint's refresh
    endpoint is mounted at, found by its view function (so a renamed or
    nested blueprint is found too)."""
    if state.settings.cookie_path is not None:
        return state.settings.cookie_path
    paths = refresh_paths(current_app)
    if len(paths) != 1:
        raise RuntimeError(
            "login_user cannot tell the refresh cookie's path: the auth"
            f" blueprint is mounted {'nowhere' if not paths else 'more than once'}."
            " Register auth_bp once, or set TOKENAUTH_COOKIE_PATH."
        )
    return request.script_root + paths[0]
