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
verify as they are.  Every check costs at least the work of one at the
configured cost, whatever the stored hash (see :func:`pad_to_rounds`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading

import bcrypt

BCRYPT_MAX_BYTES = 72
#: bcrypt's lowest cost: ``2**4`` rounds.
BCRYPT_MIN_ROUNDS = 4
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


def verify_password(password: str, stored: str, *, rounds: int) -> bool:
    """Check ``password`` against ``stored`` in constant time.

    A password longer than 72 bytes never matches a plain bcrypt hash: that
    hash could only have been made from a truncated password.  A malformed
    ``stored`` value is a mismatch, not an exception.

    :param rounds: the configured bcrypt cost.  A check that costs less work
        than one at this cost (a legacy hash of a lower cost, a malformed
        hash) is padded to it with checks of dummy hashes (see
        :func:`pad_to_rounds`), so that the time of the answer does not tell
        an attacker how old an account's hash is, or that it has none.
    """
    matched, spent = _check(password, stored)
    pad_to_rounds(spent, rounds)
    return matched


def _check(password: str, stored: str) -> tuple[bool, int | None]:
    """Whether ``password`` matches, and the bcrypt cost the check spent
    (``None`` if it spent none: ``stored`` was not a usable hash)."""
    raw = password.encode("utf-8")
    cost = hash_rounds(stored)
    try:
        if stored.startswith(PREHASH_PREFIX):
            inner = stored[len(PREHASH_PREFIX) :].encode("ascii")
            return bcrypt.checkpw(_prehash(raw, inner[:29]), inner), cost
        if len(raw) > BCRYPT_MAX_BYTES:
            # Spend the same work as a real check before refusing.
            bcrypt.checkpw(raw[:BCRYPT_MAX_BYTES], stored.encode("ascii"))
            return False, cost
        return bcrypt.checkpw(raw, stored.encode("ascii")), cost
    except (ValueError, UnicodeEncodeError):
        # bcrypt refuses a malformed hash (or cost) before doing any work.
        return False, None


def pad_to_rounds(spent: int | None, rounds: int) -> None:
    """Spend what a check at cost ``spent`` left short of one at ``rounds``.

    bcrypt's work doubles with each unit of cost, so a check at cost
    ``r < rounds`` leaves ``2**rounds - 2**r = 2**r + ... + 2**(rounds-1)``
    to spend: one dummy check at each cost from ``r`` to ``rounds - 1``.
    Nothing spent (``None``) leaves one check at ``rounds``; a hash of a
    higher cost than configured is not padded (it is rehashed on the next
    successful login).
    """
    remaining = max(0, 2**rounds - (0 if spent is None else 2**spent))
    for cost in range(BCRYPT_MIN_ROUNDS, rounds + 1):
        if remaining >> cost & 1:
            bcrypt.checkpw(b"padding", dummy_hash(cost).encode("ascii"))


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


_dummy_hashes: dict[int, str] = {}
_dummy_lock = threading.Lock()


def dummy_hash(rounds: int) -> str:
    """:func:`make_dummy_hash` of ``rounds``, made on first need and kept for
    the life of the process.

    Made lazily so that creating an app costs no bcrypt work (a host's test
    suite creates many), and shared by every app of the process since any
    hash of the same cost serves.  The lock makes concurrent first requests
    make it once.
    """
    found = _dummy_hashes.get(rounds)
    if found is None:
        with _dummy_lock:
            found = _dummy_hashes.get(rounds)
            if found is None:
                found = _dummy_hashes[rounds] = make_dummy_hash(rounds)
    return found
