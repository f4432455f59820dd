"""The assurance interface the second-factor views call: upgrade a session
by a completed factor, start a session by a factor alone (a passkey), and
renew ``auth_time`` (a step-up).

A session's level lives on its row and in its tokens' claims (see
:mod:`._authlevel`); the checks of ``@login_required`` read the claims
(see :mod:`._step_up`).  The factors themselves (TOTP, recovery codes,
passkeys) are verified by their own modules, which then call these.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, cast

from flask import Response, current_app, request
from sqlalchemy import Table, select, update

from . import _identity as bound_identity
from ._authlevel import EMAIL as EMAIL
from ._authlevel import ENROLL as ENROLL
from ._authlevel import HWK as HWK
from ._authlevel import MFA as MFA
from ._authlevel import OTP as OTP
from ._authlevel import PENDING as PENDING
from ._authlevel import PWD as PWD
from ._authlevel import SWK as SWK
from ._authlevel import USER as USER
from ._authlevel import Assurance as Assurance
from ._authlevel import has_second_factor as has_second_factor
from ._authlevel import merged, now_seconds, of_row
from ._config import Settings
from ._db import as_utc
from ._refresh import IssuedToken, spendable
from ._session_start import session_response, start_family
from ._state import TokenAuthState
from ._step_up import require_aal as require_aal
from ._step_up import require_fresh as require_fresh
from ._step_up import require_to_add_factor as require_to_add_factor
from ._step_up import require_to_change_factors as require_to_change_factors
from .errors import TokenRevoked
from .models import RefreshToken, Session

_sessions = cast(Table, Session.__table__)
_tokens = cast(Table, RefreshToken.__table__)
#: The module of the blueprint's ``/refresh`` view.
_REFRESH_MODULE = __package__ + ".views.auth"

#: A factor ``/reauthenticate`` accepts besides the password: given the
#: state, the user and the JSON body, the RFC 8176 method it proved (e.g.
#: ``"otp"``); it raises the factor's own 4xx error if the proof is wrong.
ReauthFactor = Callable[[TokenAuthState, Any, Mapping[str, Any]], str]
#: Body key -> its verifier, registered by the factor modules
#: (:func:`reauth_factor`); ``password`` is ``/reauthenticate``'s own.
REAUTH_FACTORS: dict[str, ReauthFactor] = {}


def reauth_factor(key: str) -> Callable[[ReauthFactor], ReauthFactor]:
    """Register a verifier for ``POST /reauthenticate`` bodies that carry
    ``key`` (``"code"``, ``"credential"``)::

        @reauth_factor("code")
        def reauth_by_totp(state, user, body) -> str:
            ...verify body["code"] for user, raise on failure...
            return OTP
    """

    def register(verify: ReauthFactor) -> ReauthFactor:
        REAUTH_FACTORS[key] = verify
        return verify

    return register


def _live_session(conn: Any, family_id: str, now: datetime, lock: bool) -> Any:
    query = select(_sessions).where(
        _sessions.c.id == family_id,
        _sessions.c.revoked_at.is_(None),
        _sessions.c.expires_at > now,
    )
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise TokenRevoked()  # the session ended under the caller's token
    return row


def complete_factor(
    state: TokenAuthState,
    user: Any,
    family_id: str | None,
    methods: Sequence[str],
    *,
    aal: int = 2,
) -> Response:
    """The answer to a completed second factor (``/mfa/verify``,
    ``/passkeys/verify``), as ``/login`` answers: ``{user, accessToken}``
    and the refresh cookie.

    The caller's session ``family_id`` (its ``sid``) is upgraded in place:
    same id, ``amr`` gains ``methods`` and ``mfa``, ``aal`` at least
    ``aal``, ``auth_time`` now, no restriction, the session's full lifetime
    (from its start), and its refresh token replaced (the old one is
    revoked).  Call it after the factor was verified; the caller sends
    its signal (``mfa_verified``).

    :param family_id: ``None``: no session to upgrade, one is started
        (as :func:`start_session`).
    :raises TokenRevoked: the session has ended meanwhile.
    """
    if family_id is None:
        return start_session(state, user, [*methods, MFA], aal=aal)
    now = datetime.now(timezone.utc)
    sub = state.user_store.sub_of(user)
    with state.db.begin() as conn:
        row = _live_session(conn, family_id, now, lock=True)
        if row.user_id != sub:
            raise TokenRevoked()
        level = of_row(row.amr, row.aal, row.auth_time, row.mfa_state, row.created_at)
        level = level.upgraded(methods, aal, int(now.timestamp()))
        issued = _reissue(state, conn, row, level, now)
    return session_response(state, user, 200, issued, _cookie_settings(state))


def _reissue(
    state: TokenAuthState, conn: Any, row: Any, level: Assurance, now: datetime
) -> IssuedToken:
    """Write session ``row``'s new ``level`` (the caller has locked the
    row) and replace its live refresh tokens with one new token.  The
    session ends the configured lifetime after its start (a pending one had
    a short life).  The old tokens are revoked, not spent: one presented
    later is refused without counting as reuse (which would end the
    session)."""
    expires_at = as_utc(row.created_at) + state.settings.refresh_expires
    conn.execute(
        update(_tokens)
        .where(_tokens.c.family_id == row.id, spendable(_tokens, now))
        .values(revoked_at=now)
    )
    conn.execute(
        update(_sessions)
        .where(_sessions.c.id == row.id)
        .values(expires_at=expires_at, last_used_at=now, **level.row())
    )
    return state.refresh_tokens.insert_token(
        conn,
        row.user_id,
        row.id,
        expires_at,
        now,
        identity=row.user_identity,
        email_verified=row.email_verified,
        assurance=level,
    )


def _cookie_settings(state: TokenAuthState) -> Settings:
    """The app's settings, with the refresh cookie's path set to the
    blueprint's when the view is not one of the blueprint's own (a host's
    factor view): the cookie must reach ``/refresh``."""
    settings = state.settings
    rule = request.url_rule
    if settings.cookie_path is not None or rule is None:
        return settings
    if rule.endpoint.rpartition(".")[0] + ".refresh" in current_app.view_functions:
        return settings
    paths = _refresh_paths()
    if len(paths) != 1:  # mounted twice: the app must set TOKENAUTH_COOKIE_PATH
        return settings
    return dataclasses.replace(settings, cookie_path=request.script_root + paths[0])


def _refresh_paths() -> list[str]:
    """Where the blueprint's ``/refresh`` is mounted (as
    ``views.auth.refresh_paths``, found by the view's qualified name: this
    module is imported by the blueprint's views and cannot import them)."""
    app = current_app
    return sorted(
        {
            rule.rule.rsplit("/", 1)[0] or "/"
            for rule in app.url_map.iter_rules()
            if (view := app.view_functions.get(rule.endpoint)) is not None
            and getattr(view, "__module__", None) == _REFRESH_MODULE
            and getattr(view, "__name__", None) == "refresh"
        }
    )


def start_session(
    state: TokenAuthState, user: Any, methods: Sequence[str], *, aal: int = 2
) -> Response:
    """Start a session for ``user`` authenticated by ``methods`` alone (a
    passkey with user verification: ``["hwk", "user"]``, ``aal`` 2),
    answered as ``/login`` answers.  Below ``aal`` 2 it is a login like
    any other (pending if the user has a second factor)."""
    sub = state.user_store.sub_of(user)
    identity = bound_identity.read(state, sub)
    with state.db.begin() as conn:
        issued = start_family(
            state, conn, sub, identity=identity, user=user, methods=methods, aal=aal
        )
    return session_response(state, user, 200, issued, _cookie_settings(state))


def renew_auth_time(
    state: TokenAuthState, family_id: str, methods: Sequence[str] = ()
) -> str:
    """Renew the ``auth_time`` of session ``family_id`` (``amr`` gains
    ``methods``), without a new session or refresh token: the next
    refresh carries it too.  Returns an access token that says so.

    :raises TokenRevoked: the session has ended meanwhile.
    """
    now = datetime.now(timezone.utc)
    with state.db.begin() as conn:
        row = _live_session(conn, family_id, now, lock=True)
        old = of_row(row.amr, row.aal, row.auth_time, row.mfa_state, row.created_at)
        level = Assurance(
            merged(old.amr, methods), old.aal, now_seconds(), old.restriction
        )
        conn.execute(
            _sessions.update()
            .where(_sessions.c.id == family_id)
            .values(last_used_at=now, **level.row())
        )
    return state.access_tokens.issue(
        row.user_id,
        family_id,
        identity=row.user_identity,
        email_verified=row.email_verified,
        assurance=level,
    )
