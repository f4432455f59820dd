"""Passkeys (``TOKENAUTH_PASSKEYS_ENABLED``, off by default: then every
endpoint here is ``404 NOT_FOUND``).

- ``POST /passkeys/register/options``, ``POST /passkeys/register``: add a
  passkey to the signed-in user (a full session; a fresh authentication if
  the user has a second factor already).
- ``GET /passkeys``, ``PATCH``/``DELETE /passkeys/<id>``: list, rename,
  remove (removal wants a fresh authentication).
- ``POST /passkeys/login/options``, ``POST /passkeys/login``: sign in with
  a passkey only (user verification required): ``aal`` 2, answered as
  ``/login`` answers.
- ``POST /passkeys/verify/options``, ``POST /passkeys/verify``: a passkey
  as the second factor of a session waiting for one.

The ceremonies are in :mod:`.._passkeys` (imported on first use: the
``webauthn`` package is an extra), the challenges in
:mod:`.._passkey_challenges`.  See docs/passkeys.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import Any

from flask import Response, current_app, jsonify, request

from .. import _assurance, signals
from .. import _lockout as lockout
from .. import _passkey_challenges as challenges
from .. import _passkey_rows as rows
from .. import _verification as verification
from .._ratelimit import LOGIN, limited
from .._state import TokenAuthState, get_state
from ..decorators import login_required
from ..errors import (
    EmailNotVerified,
    PasskeyInvalid,
    PasskeyNotFound,
    ValidationError,
)
from ..globals import _get_user as load_current_user
from ..globals import current_claims
from ..openapi._ops_passkeys import ASSERTION, REGISTER, RENAME
from ._common import allow, switched


def _app() -> Any:
    return current_app._get_current_object()  # type: ignore[attr-defined]


def _ceremonies() -> ModuleType:
    """:mod:`.._passkeys`, imported on first use: it imports ``webauthn``
    (the ``[passkeys]`` extra, checked at start-up while passkeys are on)."""
    from .. import _passkeys

    return _passkeys


def _options(options_json: str, status: int = 200) -> Response:
    """Options as the ``webauthn`` package wrote them: WebAuthn's JSON form
    (``PublicKeyCredentialCreationOptionsJSON`` or ``...RequestOptionsJSON``,
    binary fields base64url), ready for
    ``PublicKeyCredential.parseCreationOptionsFromJSON()`` (or
    ``parseRequestOptionsFromJSON()``)."""
    return current_app.response_class(
        options_json, status=status, mimetype="application/json"
    )


def _credential(body: dict[str, Any]) -> dict[str, Any]:
    credential = body.get("credential")
    if not isinstance(credential, dict):
        raise ValidationError(
            "'credential' (the browser's PublicKeyCredential, as JSON) is required"
        )
    return credential


def _name(body: dict[str, Any], required: bool) -> str | None:
    """A passkey's name: trimmed, 1 to 64 printable characters."""
    value = body.get("name")
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise ValidationError("'name' must be a string")
    value = value.strip()
    if not value or len(value) > rows.MAX_NAME_LENGTH or not value.isprintable():
        raise ValidationError(
            f"'name' must be 1 to {rows.MAX_NAME_LENGTH} printable characters"
        )
    return value


def _caller() -> tuple[Any, str, str]:
    """The caller's user (loaded: still there and active), ``sub`` and
    session id."""
    user = load_current_user()
    return user, str(current_claims["sub"]), str(current_claims["sid"])


def _require_fresh_if_factor(state: TokenAuthState, sub: str) -> None:
    """Adding a passkey is adding a way in: for a user who has a second
    factor already, the session must have proved one, recently (``401
    MFA_REQUIRED``, ``401 REAUTHENTICATION_REQUIRED``; see
    :func:`.._assurance.require_to_add_factor`).  A first passkey needs
    none: until then the password alone is the account."""
    settings = state.settings
    with state.db.begin() as conn:
        has_factor = _assurance.has_second_factor(
            conn, sub, totp=settings.totp_enabled, passkeys=True
        )
    if has_factor:
        _assurance.require_to_add_factor(current_claims)


# -- Registration ----------------------------------------------------------------


@switched("passkeys_enabled")
@login_required(mfa_enrollment=True)
def register_options() -> Response:
    """The creation options for ``navigator.credentials.create()``."""
    allow("POST")
    state = get_state()
    user, sub, session_id = _caller()
    _require_fresh_if_factor(state, sub)
    name = state.user_store.login_of(user)
    with state.db.begin() as conn:
        options = _ceremonies().registration_options(state, conn, sub, name, session_id)
    return _options(options)


@switched("passkeys_enabled")
@login_required(mfa_enrollment=True)
def register() -> Response:
    """``{credential, name?}`` → ``201 {passkey}``."""
    allow("POST")
    state = get_state()
    body = REGISTER.read()
    credential, name = body["credential"], _name(body, required=False)
    _, sub, session_id = _caller()
    _require_fresh_if_factor(state, sub)
    stored = _ceremonies().register(state, sub, session_id, credential, name)
    signals.passkey_registered.send(
        _app(), user_id=state.user_store.user_id(sub), passkey_id=stored.id
    )
    response = jsonify(passkey=stored.to_json())
    response.status_code = 201
    return response


# -- Managing them ---------------------------------------------------------------


@switched("passkeys_enabled")
@login_required(mfa_enrollment=True)
def list_passkeys() -> Response:
    """``{passkeys: [{id, name, createdAt, lastUsedAt, backedUp}]}``."""
    allow("GET")
    state = get_state()
    _, sub, _ = _caller()
    with state.db.begin() as conn:
        passkeys = rows.of_user(conn, sub)
    return jsonify(passkeys=[p.to_json() for p in passkeys])


@switched("passkeys_enabled")
@login_required
def passkey(passkey_id: str) -> Response:
    """``PATCH {name}`` → ``{passkey}``; ``DELETE`` (fresh authentication)."""
    allow("PATCH", "DELETE")
    state = get_state()
    _, sub, _ = _caller()
    user_id = state.user_store.user_id(sub)
    if request.method == "PATCH":
        name = _name(RENAME.read(), required=True)
        assert name is not None
        with state.db.begin() as conn:
            found = rows.rename(conn, sub, passkey_id, name)
            stored = rows.get(conn, passkey_id) if found else None
        if stored is None:
            raise PasskeyNotFound()
        signals.passkey_renamed.send(_app(), user_id=user_id, passkey_id=passkey_id)
        return jsonify(passkey=stored.to_json())
    with state.db.begin() as conn:
        owned = rows.get(conn, passkey_id)
    if owned is None or owned.user_id != sub:
        raise PasskeyNotFound()
    _assurance.require_to_change_factors(current_claims)
    _assurance.require_fresh(current_claims)
    with state.db.begin() as conn:
        removed = rows.remove(conn, sub, passkey_id)
    if not removed:
        raise PasskeyNotFound()
    signals.passkey_removed.send(_app(), user_id=user_id, passkey_id=passkey_id)
    return jsonify(message="Passkey removed")


# -- Signing in without a password -----------------------------------------------


@switched("passkeys_enabled")
@limited(LOGIN)
def login_options() -> Response:
    """The request options of a password-less sign-in (no user named: the
    authenticator offers its discoverable credentials), the challenge bound
    to a sign-in cookie set here."""
    allow("POST")
    state = get_state()
    binding = challenges.presented_binding(state) or challenges.new_binding()
    with state.db.begin() as conn:
        options = _ceremonies().authentication_options(state, conn, binding=binding)
    response = _options(options)
    challenges.set_binding_cookie(response, state, binding)
    return response


@switched("passkeys_enabled")
@limited(LOGIN)
def login() -> Response:
    """``{credential}`` → ``200 {user, accessToken}`` and the refresh
    cookie, as ``/login``; the session is ``aal`` 2, ``amr``
    ``["hwk"|"swk", "user"]``."""
    allow("POST")
    state = get_state()
    store = state.user_store
    credential = ASSERTION.read()["credential"]
    assertion = _ceremonies().verify_assertion(
        state, credential, binding=challenges.presented_binding(state)
    )
    user = store.get(assertion.user_id)
    if user is None or not store.is_active(user):
        # A passkey of a user gone or disabled: no account, as a wrong one.
        raise PasskeyInvalid()
    if verification.is_required(state) and not store.is_email_verified(user):
        signals.login_unverified.send(_app(), user_id=store.user_id(assertion.user_id))
        raise EmailNotVerified()
    response: Response = _assurance.start_session(state, user, assertion.methods, aal=2)
    # The sign-in cookie stays (until its 5 minutes are up): another tab's
    # outstanding challenge is bound to it too.
    # As good as the password for the wrong-password limits (see _lockout):
    # a known device from now on.
    lockout.trust_device(
        response, state, lockout.account_of(store, user, store.login_of(user))
    )
    signals.login_succeeded.send(
        _app(),
        user_id=store.user_id(assertion.user_id),
        session_id=_session_of(state, response),
        method="passkey",
    )
    return response


def _session_of(state: TokenAuthState, response: Response) -> str | None:
    """The new session's id, read back from the access token the answer
    carries (:func:`.._assurance.start_session` answers a response)."""
    token = (response.get_json(silent=True) or {}).get("accessToken")
    if not isinstance(token, str):
        return None
    sid = state.access_tokens.verify(token).get("sid")
    return sid if isinstance(sid, str) else None


# -- As a second factor -----------------------------------------------------------


@switched("passkeys_enabled")
@login_required(mfa_pending=True, mfa_enrollment=True)
def verify_options() -> Response:
    """The request options of a second factor (or a re-authentication):
    ``allowCredentials`` the user's passkeys, the challenge bound to the
    session."""
    allow("POST")
    state = get_state()
    _, sub, session_id = _caller()
    with state.db.begin() as conn:
        if not rows.of_user(conn, sub):
            raise PasskeyNotFound("No passkey registered")
        options = _ceremonies().authentication_options(
            state, conn, sub=sub, session_id=session_id
        )
    return _options(options)


@switched("passkeys_enabled")
@limited(LOGIN)
@login_required(mfa_pending=True, mfa_enrollment=True)
def verify() -> Response:
    """``{credential}`` → the session upgraded to ``aal`` 2: ``200 {user,
    accessToken}`` and the rotated refresh cookie, as ``/login``.  Open to
    a session that had to enrol (``TOKENAUTH_MFA = "required"``) too, as
    ``/mfa/verify`` is: once it has registered a passkey, proving it lets
    the session go on."""
    allow("POST")
    state = get_state()
    credential = ASSERTION.read()["credential"]
    user, sub, session_id = _caller()
    assertion = _ceremonies().verify_assertion(
        state, credential, sub=sub, session_id=session_id
    )
    response: Response = _assurance.complete_factor(
        state, user, session_id, assertion.methods, aal=2
    )
    signals.mfa_verified.send(
        _app(),
        user_id=state.user_store.user_id(sub),
        session_id=session_id,
        method="passkey",
    )
    return response


# -- As a re-authentication (``POST /reauthenticate {credential}``) -----------------


@_assurance.reauth_factor("credential")
def reauthenticate(state: TokenAuthState, user: Any, body: Mapping[str, Any]) -> str:
    """``/reauthenticate`` with a passkey: the answer to
    ``/passkeys/verify/options`` (asked with the same session's token).
    Returns ``hwk`` or ``swk``."""
    if not state.settings.passkeys_enabled:
        raise ValidationError("Passkeys are not enabled")
    credential = _credential(dict(body))
    assertion = _ceremonies().verify_assertion(
        state,
        credential,
        sub=state.user_store.sub_of(user),
        session_id=str(current_claims["sid"]),
    )
    return str(assertion.methods[0])
