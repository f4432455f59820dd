"""Password hashing with bcrypt, without bcrypt's 72-byte truncation.

bcrypt only reads the first 72 bytes of its input (bcrypt 4 truncates
silently, bcrypt 5 raises).  So that every character of a long password
counts:

* a password of at most 72 UTF-8 bytes is hashed with plain bcrypt, giving a
  standard ``$2b$`` hash that any bcrypt implementation can verify;
* a longer one is first reduced to ``base64(HMAC-SHA256(salt, password))``
  (44 bytes, no NUL) and that is hashed with bcrypt.  The stored string is
  ``$bcrypt-sha256$`` followed by the bcrypt hash, so the two kinds are told
  apart on sight.  Keying the HMAC with the per-hash salt means the
  intermediate value is not a plain SHA-256 of the password that could be
  matched against other leaked SHA-256 lists ("password shucking").

Hashes made elsewhere (``$2a$``, ``$2b$``, ``$2y$``, e.g. by Node's bcryptjs)
verify as they are.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import bcrypt

BCRYPT_MAX_BYTES = 72
PREHASH_PREFIX = "$bcrypt-sha256$"


def _prehash(password: bytes, salt: bytes) -> bytes:
    return base64.b64encode(hmac.new(salt, password, hashlib.sha256).digest())


def hash_password(password: str, rounds: int) -> str:
    """Return a hash of ``password`` at bcrypt cost ``rounds``."""
    raw = password.encode("utf-8")
    salt = bcrypt.gensalt(rounds)
    if len(raw) <= BCRYPT_MAX_BYTES:
        return bcrypt.hashpw(raw, salt).decode("ascii")
    return PREHASH_PREFIX + bcrypt.hashpw(_prehash(raw, salt), salt).decode("ascii")


def verify_password(password: str, stored: str) -> bool:
    """Check ``password`` against ``stored`` in constant time.

    A password longer than 72 bytes never matches a plain bcrypt hash: that
    hash could only have been made from a truncated password.  A malformed
    ``stored`` value is a mismatch, not an exception.
    """
    raw = password.encode("utf-8")
    try:
        if stored.startswith(PREHASH_PREFIX):
            inner = stored[len(PREHASH_PREFIX) :].encode("ascii")
            return bcrypt.checkpw(_prehash(raw, inner[:29]), inner)
        if len(raw) > BCRYPT_MAX_BYTES:
            # Spend the same work as a real check before refusing.
            bcrypt.checkpw(raw[:BCRYPT_MAX_BYTES], stored.encode("ascii"))
            return False
        return bcrypt.checkpw(raw, stored.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return False


def hash_rounds(stored: str) -> int | None:
    """The bcrypt cost of ``stored``, or ``None`` if it is not a bcrypt hash."""
    inner = stored.removeprefix(PREHASH_PREFIX)
    parts = inner.split("$")
    if len(parts) < 4 or parts[1] not in {"2a", "2b", "2y"}:
        return None
    try:
        return int(parts[2])
    except ValueError:
        return None


def needs_rehash(stored: str, rounds: int) -> bool:
    """Whether ``stored`` should be replaced by a hash at cost ``rounds``."""
    return hash_rounds(stored) != rounds


def make_dummy_hash(rounds: int) -> str:
    """A real hash at the configured cost, checked when an email is unknown so
    that an unknown email costs the same bcrypt work as a wrong password."""
    return hash_password("dummy password for unknown emails", rounds)
