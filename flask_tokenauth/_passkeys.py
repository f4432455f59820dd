"""The WebAuthn ceremonies of passkeys, over the ``webauthn`` package (the
``[passkeys]`` extra): the options a browser passes to
``navigator.credentials.create()`` / ``.get()``, and the verification of
what it answers.  The rows of ``tokenauth_passkeys`` are in
:mod:`._passkey_rows`, the challenges in :mod:`._passkey_challenges`.

Imported only while ``TOKENAUTH_PASSKEYS_ENABLED`` is on (the views import
it lazily), so the package works without the extra.

Decided here:

- The user handle is an HMAC-SHA256 of the ``sub`` (a key derived from
  ``TOKENAUTH_REFRESH_SECRET``), never the address: the authenticator keeps
  it and may show it to anyone holding the device.  It is stored with each
  credential and reused for the user's next ones, so rotating the secret
  changes nothing for existing passkeys.
- ``hwk`` or ``swk`` (RFC 8176) from the authenticator data of each
  sign-in: a credential that is *backup eligible* (the ``BE`` flag: a
  synced passkey, its private key copied to the user's cloud account) is
  ``swk``; a device-bound one (a security key, a TPM) is ``hwk``.
- The sign counter: an authenticator that counts (non-zero) must count up;
  a counter that does not go past the stored one is a cloned authenticator
  (or a replayed assertion) and the sign-in is refused.  The check and the
  update are one conditional ``UPDATE``, so two assertions with the same
  counter cannot both pass.  Synced passkeys report ``0`` always.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, NoReturn

from flask import current_app
from sqlalchemy import Connection
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from . import _passkey_challenges as challenges
from . import _passkey_rows as rows
from . import signals
from ._passkey_challenges import b64url, unb64url
from ._passkey_rows import StoredPasskey
from ._state import TokenAuthState
from .errors import PasskeyInvalid, PasskeyRejected

logger = logging.getLogger("flask_tokenauth")

_HANDLE_CONTEXT = b"flask_tokenauth webauthn user handle\x00"
_TIMEOUT_MS = int(challenges.LIFETIME.total_seconds() * 1000)
_TRANSPORTS = {t.value: t for t in AuthenticatorTransport}
#: RFC 8176 ``amr`` values.
HWK, SWK, USER = "hwk", "swk", "user"


@dataclass(frozen=True)
class Assertion:
    """A verified passkey assertion."""

    #: The credential's owner (``sub``).
    user_id: str
    passkey_id: str
    #: ``amr`` values it proves: ``["hwk"|"swk", "user"]``.
    methods: list[str]


def _app() -> Any:
    return current_app._get_current_object()  # type: ignore[attr-defined]


def user_handle(state: TokenAuthState, sub: str) -> str:
    """The user handle of ``sub``'s first passkey, base64url: an HMAC of
    the ``sub`` (their next passkeys reuse the stored one)."""
    return b64url(
        hmac.new(
            state.settings.refresh_secret,
            _HANDLE_CONTEXT + sub.encode(),
            hashlib.sha256,
        ).digest()
    )


def _descriptors(passkeys: list[StoredPasskey]) -> list[PublicKeyCredentialDescriptor]:
    return [
        PublicKeyCredentialDescriptor(
            id=unb64url(p.id),
            transports=[_TRANSPORTS[t] for t in p.transports if t in _TRANSPORTS],
        )
        for p in passkeys
    ]


def _origins(state: TokenAuthState) -> list[str]:
    return sorted(state.settings.webauthn_origins)


def _rp_id(state: TokenAuthState) -> str:
    rp_id = state.settings.webauthn_rp_id
    assert rp_id is not None  # checked at start-up
    return rp_id


# -- Registration ----------------------------------------------------------------


def registration_options(
    state: TokenAuthState, conn: Connection, sub: str, name: str, session_id: str
) -> str:
    """The creation options for ``sub`` (shown as ``name``, their login),
    as JSON: a discoverable credential (``residentKey: required``), user
    verification preferred, no attestation, the user's passkeys excluded;
    the challenge bound to the session ``session_id``."""
    existing = rows.of_user(conn, sub)
    handle = existing[0].user_handle if existing else user_handle(state, sub)
    challenge = challenges.issue(conn, challenges.REGISTER, session_id=session_id)
    settings = state.settings
    options = generate_registration_options(
        rp_id=_rp_id(state),
        rp_name=settings.webauthn_rp_name or _rp_id(state),
        user_name=name,
        user_id=unb64url(handle),
        user_display_name=name,
        challenge=challenge,
        timeout=_TIMEOUT_MS,
        attestation=AttestationConveyancePreference.NONE,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
        exclude_credentials=_descriptors(existing),
    )
    return options_to_json(options)


def register(
    state: TokenAuthState,
    sub: str,
    session_id: str,
    credential: dict[str, Any],
    name: str | None,
) -> StoredPasskey:
    """Verify the answer of ``navigator.credentials.create()`` to a
    challenge of this session and store the passkey.

    :raises PasskeyChallengeInvalid: the challenge is not this session's
        outstanding one.
    :raises PasskeyRejected: the response does not verify (origin, RP id,
        challenge, format), or the credential is registered already.
    """
    signed = challenges.signed_challenge(credential)
    with state.db.begin() as conn:
        challenge = challenges.spend(
            conn, signed, challenges.REGISTER, session_id=session_id
        )
    try:
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=_rp_id(state),
            expected_origin=_origins(state),
        )
    except Exception as e:  # the library's, cbor2's, or its parsers' errors
        # All caused by what the client sent: a refusal, never a 500.
        logger.info("tokenauth: passkey registration refused: %s", e)
        raise PasskeyRejected() from None
    credential_id = b64url(verified.credential_id)
    public_key = b64url(verified.credential_public_key)
    # WebAuthn allows ids of up to 1023 bytes; keys this long are none we
    # verify (RSA 4096 is ~720 characters): refused, not a database error.
    if len(credential_id) > rows.MAX_ID_LENGTH or len(public_key) > rows.MAX_KEY_LENGTH:
        raise PasskeyRejected()
    response = credential.get("response")
    transports = response.get("transports") if isinstance(response, dict) else None
    if not isinstance(transports, list):
        transports = []
    with state.db.begin() as conn:
        existing = rows.of_user(conn, sub)
        handle = existing[0].user_handle if existing else user_handle(state, sub)
        stored = rows.insert_passkey(
            conn,
            id=credential_id,
            user_id=sub,
            public_key=public_key,
            sign_count=verified.sign_count,
            name=name or f"Passkey {len(existing) + 1}",
            aaguid=verified.aaguid,
            transports=[
                t for t in transports if isinstance(t, str) and t in _TRANSPORTS
            ],
            backed_up=verified.credential_backed_up,
            user_handle=handle,
        )
    if stored is None:
        raise PasskeyRejected("This passkey is registered already")
    return stored


# -- Assertions (sign-in, second factor) -----------------------------------------


def authentication_options(
    state: TokenAuthState,
    conn: Connection,
    *,
    sub: str | None = None,
    session_id: str | None = None,
    binding: str | None = None,
) -> str:
    """The request options, as JSON.  Without ``sub``: a password-less
    sign-in (any discoverable credential, user verification required), the
    challenge bound to the sign-in cookie ``binding``.  With it: a second
    factor (``allowCredentials``: the user's passkeys, user verification
    preferred), bound to the session ``session_id``."""
    if sub is None:
        challenge = challenges.issue(conn, challenges.LOGIN, binding=binding)
        allowed: list[PublicKeyCredentialDescriptor] = []
        verification = UserVerificationRequirement.REQUIRED
    else:
        challenge = challenges.issue(conn, challenges.VERIFY, session_id=session_id)
        allowed = _descriptors(rows.of_user(conn, sub))
        verification = UserVerificationRequirement.PREFERRED
    options = generate_authentication_options(
        rp_id=_rp_id(state),
        challenge=challenge,
        timeout=_TIMEOUT_MS,
        allow_credentials=allowed,
        user_verification=verification,
    )
    return options_to_json(options)


def verify_assertion(
    state: TokenAuthState,
    credential: dict[str, Any],
    *,
    sub: str | None = None,
    session_id: str | None = None,
    binding: str | None = None,
) -> Assertion:
    """Verify the answer of ``navigator.credentials.get()``: of any user's
    passkey with user verification (``sub`` ``None``: a sign-in, challenge
    bound to the cookie value ``binding``), or of one of ``sub``'s (a second
    factor or a re-authentication, challenge bound to ``session_id``).  The
    passkey's counter, flags and last use are updated.

    :raises PasskeyChallengeInvalid: the challenge is not an outstanding
        one of this session or browser.
    :raises PasskeyInvalid: anything else (see :class:`.errors.PasskeyInvalid`).
    """
    signed = challenges.signed_challenge(credential)
    purpose = challenges.LOGIN if sub is None else challenges.VERIFY
    with state.db.begin() as conn:
        challenge = challenges.spend(
            conn, signed, purpose, session_id=session_id, binding=binding
        )
    credential_id = credential.get("id")
    if not isinstance(credential_id, str) or len(credential_id) > rows.MAX_ID_LENGTH:
        raise PasskeyInvalid()
    with state.db.begin() as conn:
        stored = rows.get(conn, credential_id)
    if stored is None or (sub is not None and stored.user_id != sub):
        raise PasskeyInvalid()
    response = credential.get("response")
    handle = response.get("userHandle") if isinstance(response, dict) else None
    if handle and not hmac.compare_digest(str(handle), stored.user_handle):
        _refused(state, stored, "user-handle")
    try:
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=_rp_id(state),
            expected_origin=_origins(state),
            credential_public_key=unb64url(stored.public_key),
            # Checked below, in the UPDATE that records the new count.
            credential_current_sign_count=0,
            require_user_verification=sub is None,
        )
    except Exception as e:  # the library's, cbor2's, or its parsers' errors
        logger.info("tokenauth: passkey assertion refused: %s", e)
        _refused(state, stored, "assertion")
    count = verified.new_sign_count
    with state.db.begin() as conn:
        counted = (count == 0 and stored.sign_count == 0) or count > stored.sign_count
        if not counted or not rows.record_use(
            conn,
            stored.id,
            count,
            backed_up=verified.credential_backed_up,
            now=datetime.now(timezone.utc),
        ):
            logger.warning(
                "tokenauth: passkey %s of user %s presented sign count %d, not"
                " past %d: a cloned authenticator?",
                stored.id[:12],
                stored.user_id,
                count,
                stored.sign_count,
            )
            _refused(state, stored, "sign-count")
    multi = verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE
    return Assertion(stored.user_id, stored.id, [SWK if multi else HWK, USER])


def _refused(state: TokenAuthState, stored: StoredPasskey, reason: str) -> NoReturn:
    """A known passkey refused: signalled (``mfa_failed`` to its owner,
    with the reason), then raised."""
    signals.mfa_failed.send(
        _app(),
        user_id=state.user_store.user_id(stored.user_id),
        method="passkey",
        reason=reason,
        passkey_id=stored.id,
    )
    raise PasskeyInvalid()
