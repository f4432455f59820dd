"""Signals, for auditing and alerting without patching the library.

Each is a blinker signal (as Flask's own) sent with the application as
sender and keyword arguments::

    from flask_tokenauth import signals

    @signals.refresh_token_reused.connect_via(app)
    def alert(app, user_id, session_id, **extra):
        security_log.warning("refresh token reuse for user %s", user_id)

Receivers run inside the request; an exception in one propagates.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

#: A user registered. ``user_id``, ``email``.
user_registered = _signals.signal("tokenauth.user-registered")
#: A login succeeded. ``user_id``, ``session_id``, ``method``
#: (``"password"``: ``/login``; ``"email"``: a sign-in by email; ``None``:
#: the app's own login through ``login_user``).
login_succeeded = _signals.signal("tokenauth.login-succeeded")
#: A login failed. ``email`` (normalized), ``user_id`` (``None`` if unknown).
login_failed = _signals.signal("tokenauth.login-failed")
#: A refresh succeeded. ``user_id``, ``session_id``, ``rotated`` (``False``
#: for a repeat within the reuse interval).
token_refreshed = _signals.signal("tokenauth.token-refreshed")
#: A spent refresh token was presented again within the reuse interval and
#: got the one grace answer its rotation allows (an access token, no new
#: cookie); ``token_refreshed`` is sent too, with ``rotated=False``.  Sent
#: on every grace answer: a stream of them is worth a look.  ``user_id``,
#: ``session_id``.
refresh_grace_used = _signals.signal("tokenauth.refresh-grace-used")
#: An already-rotated refresh token was presented; its session is revoked.
#: ``user_id``, ``session_id``.
refresh_token_reused = _signals.signal("tokenauth.refresh-token-reused")
#: Sessions were revoked. ``user_id``, ``session_ids``, ``reason`` (one of
#: ``"logout"``, ``"reuse"``, ``"revoked"``, ``"logout-others"``,
#: ``"logout-all"``, ``"password-changed"``, ``"password-reset"``,
#: ``"admin"``, ``"user-gone"``, ``"email-change-cancelled"``,
#: ``"email-verified"``, ``"mfa-reset"``).
session_revoked = _signals.signal("tokenauth.session-revoked")
#: A client logged out. ``user_id`` and ``session_id`` (``None`` if its
#: cookie was missing or unknown); once per session if it sent several.
logged_out = _signals.signal("tokenauth.logged-out")
#: A user changed their password. ``user_id``.
password_changed = _signals.signal("tokenauth.password-changed")

# -- Account lifecycle (see docs/mail.md).  Signals of
# the flows that answer before they look the address up (forgot password,
# email login, resend, enumeration-safe registration) are sent from the
# background job that does the work, after the response, with the app as
# sender as always.

#: A verification link was mailed. ``user_id``, ``email``.
verification_sent = _signals.signal("tokenauth.verification-sent")
#: An address was verified (link, CLI or admin). ``user_id``, ``email``.
email_verified = _signals.signal("tokenauth.email-verified")
#: A login with the right password was refused (``403 EMAIL_NOT_VERIFIED``)
#: because verification is ``required`` and the address is not verified
#: yet. ``user_id``.
login_unverified = _signals.signal("tokenauth.login-unverified")
#: A password-reset link was mailed. ``user_id``, ``email``.
password_reset_requested = _signals.signal("tokenauth.password-reset-requested")
#: A password reset was asked for an address with no (active) account; no
#: mail is sent. ``email``.
password_reset_unknown = _signals.signal("tokenauth.password-reset-unknown")
#: A password was reset through a link; every session was revoked.
#: ``user_id``.
password_reset = _signals.signal("tokenauth.password-reset")
#: ``/register`` (enumeration-safe) was asked for a login that has an
#: account; its owner is mailed (if the store knows an address).
#: ``user_id``, ``email`` (``None`` without one).
registration_taken = _signals.signal("tokenauth.registration-taken")
#: An address change was asked; the confirm link went to the new address.
#: ``user_id``, ``old_email``, ``new_email``.
email_change_requested = _signals.signal("tokenauth.email-change-requested")
#: An address change was asked for an address another account has: its
#: owner was mailed that, and no confirm link was made (the client got the
#: same answer). ``user_id``, ``old_email``, ``new_email``.
email_change_taken = _signals.signal("tokenauth.email-change-taken")
#: An address change was confirmed. ``user_id``, ``old_email``,
#: ``new_email``.
email_changed = _signals.signal("tokenauth.email-changed")
#: An address change was cancelled from the old address (sessions
#: revoked). ``user_id``, ``email`` (the address restored or kept),
#: ``restored`` (whether the old address was put back: ``False`` before
#: the confirmation, or when another account has it by then).
email_change_cancelled = _signals.signal("tokenauth.email-change-cancelled")
#: A sign-in link and code were mailed. ``user_id``, ``email``.
email_login_requested = _signals.signal("tokenauth.email-login-requested")
#: A sign-in by email was asked for an address with no active account; no
#: mail is sent. ``email``.
email_login_unknown = _signals.signal("tokenauth.email-login-unknown")
#: A mail was not sent because the address's limit is spent; the client got
#: the answer it would have got. ``email``, ``purpose``, ``ip``.
mail_limited = _signals.signal("tokenauth.mail-limited")
#: A mail was handed to the sender. ``template``, ``to``.
mail_sent = _signals.signal("tokenauth.mail-sent")
#: A mail could not be sent (logged too; never shown to the client).
#: ``template``, ``to``, ``error`` (the exception).
mail_failed = _signals.signal("tokenauth.mail-failed")

# -- Second factor and step-up (see docs/second-factor.md).

#: A session was upgraded by a second factor. ``user_id``, ``session_id``,
#: ``method`` (``"totp"``, ``"recovery-code"``, ``"passkey"``).
mfa_verified = _signals.signal("tokenauth.mfa-verified")
#: A second-factor code or assertion was refused. ``user_id``, ``method``.
mfa_failed = _signals.signal("tokenauth.mfa-failed")
#: TOTP was enrolled (confirmed) or removed. ``user_id``.
totp_enrolled = _signals.signal("tokenauth.totp-enrolled")
totp_removed = _signals.signal("tokenauth.totp-removed")
#: A recovery code was used. ``user_id``, ``remaining``.
recovery_code_used = _signals.signal("tokenauth.recovery-code-used")
#: Recovery codes were (re)generated. ``user_id``.
recovery_codes_generated = _signals.signal("tokenauth.recovery-codes-generated")
#: A passkey was registered, renamed or removed. ``user_id``, ``passkey_id``.
passkey_registered = _signals.signal("tokenauth.passkey-registered")
passkey_renamed = _signals.signal("tokenauth.passkey-renamed")
passkey_removed = _signals.signal("tokenauth.passkey-removed")
#: A session's ``auth_time`` was renewed by ``/reauthenticate``.
#: ``user_id``, ``session_id``, ``method``.
reauthenticated = _signals.signal("tokenauth.reauthenticated")
#: Support staff removed every factor of a user (CLI). ``user_id``.
mfa_reset = _signals.signal("tokenauth.mfa-reset")
