"""Starting a session and answering a login: the session row with its
level (see :mod:`._authlevel`) and first refresh token, and the answer
``/register``, ``/login``, the email sign-in, a completed second factor and
``login_user`` give (``{user, accessToken}`` and the refresh cookie).

Apart from the views (:mod:`.views.auth`) so that the second-factor
helpers (:mod:`._assurance`) start and upgrade sessions without importing
the blueprint.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from flask import Response, jsonify, request
from sqlalchemy import Connection

from . import _authlevel as authlevel
from . import _verification as verification
from ._config import Settings
from ._cookies import clear_refresh_cookies, refresh_cookie_values
from ._headers import set_refresh_cookie
from ._ratelimit import client_ip
from ._refresh import IssuedToken
from ._state import TokenAuthState


def token_response(
    body: dict[str, Any],
    status: int,
    state: TokenAuthState,
    issued: IssuedToken | None,
    settings: Settings | None = None,
) -> Response:
    """:param settings: the settings to set the cookie with, if not the
    app's (a view outside the blueprint: see ``_assurance``)."""
    settings = settings or state.settings
    response = jsonify(body)
    response.status_code = status
    if issued is not None:
        if len(refresh_cookie_values(state)) > 1:
            # Several refresh cookies came with the login: one at least was
            # planted (see ._cookies); ours is set anew below.
            clear_refresh_cookies(response, settings, keep_own=True)
        set_refresh_cookie(response, settings, issued.token, issued.expires_at)
    return response


def start_family(
    state: TokenAuthState,
    conn: Connection,
    user_id: str,
    now: datetime | None = None,
    identity: str | None = None,
    user: Any = None,
    *,
    methods: Sequence[str] = (authlevel.PWD,),
    aal: int = 1,
) -> IssuedToken:
    """Start a session, recording the client's user agent and address, bound
    to the user's ``identity`` fingerprint (see :mod:`.._identity`), with
    the ``email_verified`` claim of ``user`` (looked up if not given) while
    address verification is on (see :mod:`.._verification`).

    :param methods: how the user authenticated (RFC 8176 ``amr`` values);
        below ``aal`` 2 a user with a second factor gets a session that
        waits for it, and a short life (``TOKENAUTH_MFA_PENDING_EXPIRES``;
        see :mod:`.._authlevel`)."""
    if user is None:
        verified = verification.claim_of_sub(state, user_id)
    else:
        verified = verification.claim_of(state, user)
    settings = state.settings
    level = authlevel.initial(
        settings,
        conn,
        str(user_id),
        methods,
        aal,
        None if now is None else int(now.timestamp()),
    )
    pending = level.restriction == authlevel.PENDING
    return state.refresh_tokens.start_family(
        conn,
        user_id,
        now,
        user_agent=request.user_agent.string,
        ip_address=client_ip(state.settings.trusted_proxies),
        identity=identity,
        email_verified=verified,
        assurance=level,
        lifetime=settings.mfa_pending_expires if pending else None,
    )


def session_body(issued: IssuedToken) -> dict[str, Any]:
    """What a login's body adds for a restricted session: ``mfaRequired``
    (complete the second factor) or ``mfaEnrollmentRequired`` (enrol one)."""
    level = issued.assurance
    if level is None or level.restriction is None:
        return {}
    if level.restriction == authlevel.PENDING:
        return {"mfaRequired": True}
    return {"mfaEnrollmentRequired": True}


def session_response(
    state: TokenAuthState,
    user: Any,
    status: int,
    issued: IssuedToken,
    settings: Settings | None = None,
) -> Response:
    """The answer to a register or login (by password, by email, or a
    completed second factor): the user, an access token for the session
    and its refresh cookie; ``mfaRequired: true`` for a session that waits
    for its second factor (see :func:`session_body`)."""
    verified = issued.email_verified
    access = state.access_tokens.issue(
        issued.user_id,
        issued.family_id,
        identity=issued.identity,
        email_verified=verified,
        assurance=issued.assurance,
    )
    body = {
        "user": verification.user_json(state, user, verified),
        "accessToken": access,
        **session_body(issued),
    }
    return token_response(body, status, state, issued, settings)
