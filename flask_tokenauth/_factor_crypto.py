"""Encryption at rest of second-factor secrets (a TOTP seed), with
``cryptography``'s AES-GCM under a key derived by HKDF-SHA256 from
``TOKENAUTH_REFRESH_SECRET``.

A stored value is ``v1.<key id>.<base64url(nonce || ciphertext+tag)>``:

* the nonce is 96 random bits per encryption (AES-GCM's own);
* the user's ``sub`` is the associated data, so a value copied onto another
  user's row does not decrypt there (the tag fails);
* the key id (8 hex, an HMAC of the derived key) names the key without
  revealing it, so that after ``TOKENAUTH_REFRESH_SECRET`` changes a value
  of the old key is *recognised* as such rather than read as tampering.

Rotation: ``flask tokenauth mfa rekey`` reads the previous secret from an
environment variable (never the command line, which ``ps`` shows) and
re-encrypts every row under the current key (:func:`reencrypt`).  Until it
has run, a user whose secret is under an old key cannot use their
authenticator app (``decrypt`` raises :class:`KeyUnknown`); the library
never keeps old secrets in its configuration, as nothing else it signs
survives a rotation of that secret either.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = "v1"
_INFO = b"flask_tokenauth second-factor secrets v1"
_NONCE_BYTES = 12


class Unreadable(Exception):
    """A stored value that does not decrypt: tampered, moved to another
    user, or not ours.  Carries no part of the value."""


class KeyUnknown(Unreadable):
    """A value encrypted under another key (``TOKENAUTH_REFRESH_SECRET``
    changed and ``flask tokenauth mfa rekey`` has not run)."""


def derive_key(app_secret: bytes) -> bytes:
    """The 256-bit AES key of ``app_secret`` (``TOKENAUTH_REFRESH_SECRET``)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
        app_secret
    )


def key_id(key: bytes) -> str:
    """A short public name of ``key``."""
    return hmac.new(key, b"key id", hashlib.sha256).hexdigest()[:8]


def _aad(user_id: str) -> bytes:
    return b"flask_tokenauth factor\x00" + user_id.encode()


def encrypt(app_secret: bytes, plaintext: str, user_id: str) -> str:
    """``plaintext`` encrypted for ``user_id``'s row."""
    key = derive_key(app_secret)
    nonce = os.urandom(_NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, plaintext.encode(), _aad(user_id))
    body = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
    return f"{VERSION}.{key_id(key)}.{body}"


def key_id_of(stored: str) -> str | None:
    """The key id a stored value names, or ``None`` if it is not ours."""
    parts = stored.split(".")
    if len(parts) != 3 or parts[0] != VERSION:
        return None
    return parts[1]


def decrypt(app_secret: bytes, stored: str, user_id: str) -> str:
    """The plaintext of ``stored`` on ``user_id``'s row.

    :raises KeyUnknown: encrypted under another key.
    :raises Unreadable: malformed or tampered, or another user's.
    """
    key = derive_key(app_secret)
    parts = stored.split(".")
    if len(parts) != 3 or parts[0] != VERSION:
        raise Unreadable("not a stored second-factor secret")
    if not hmac.compare_digest(parts[1], key_id(key)):
        raise KeyUnknown("encrypted under another TOKENAUTH_REFRESH_SECRET")
    try:
        raw = base64.urlsafe_b64decode(parts[2] + "=" * (-len(parts[2]) % 4))
    except (binascii.Error, ValueError):
        raise Unreadable("malformed second-factor secret") from None
    if len(raw) <= _NONCE_BYTES:
        raise Unreadable("malformed second-factor secret")
    try:
        plain = AESGCM(key).decrypt(
            raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _aad(user_id)
        )
    except InvalidTag:
        raise Unreadable("second-factor secret fails its integrity check") from None
    return plain.decode()


def reencrypt(old_secret: bytes, new_secret: bytes, stored: str, user_id: str) -> str:
    """``stored`` (under ``old_secret``'s key) under ``new_secret``'s key."""
    return encrypt(new_secret, decrypt(old_secret, stored, user_id), user_id)
