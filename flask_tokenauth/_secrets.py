"""The HMAC secrets: set, long enough, and not a published placeholder."""

from __future__ import annotations

from .errors import ConfigurationError

MIN_SECRET_BYTES = 32

#: Secrets published in this repository's example and in the tutorial it
#: follows: anyone who read them can sign tokens for an app that uses them.
PLACEHOLDER_SECRETS = frozenset(
    {
        "change-me-to-a-random-string-of-at-least-32-bytes-aaaa",
        "change-me-to-another-random-string-of-32-bytes-bbbbbb",
        "your-256-bit-secret-here-make-it-long-and-random",
        "another-256-bit-secret-different-from-access",
    }
)
#: Words that mark a value as a placeholder someone forgot to replace.  They
#: are looked for in the value lower-cased with everything but letters and
#: digits removed, so ``Change_Me``, ``CHANGEME`` and ``your-secret`` match.
#: A random secret of 48 bytes contains one by chance with a probability
#: below 1e-12.
PLACEHOLDER_MARKERS = ("changeme", "replaceme", "yoursecret")


def _is_placeholder(secret: bytes) -> bool:
    text = secret.decode("utf-8", "replace").lower()
    letters = "".join(c for c in text if c.isascii() and c.isalnum())
    return text.strip() in PLACEHOLDER_SECRETS or any(
        marker in letters for marker in PLACEHOLDER_MARKERS
    )


def parse_secret(value: object, key: str, minimum: int = MIN_SECRET_BYTES) -> bytes:
    """The secret as bytes: set, long enough, and not a published placeholder.

    A placeholder is one of :data:`PLACEHOLDER_SECRETS` (compared
    case-insensitively) or any value containing one of
    :data:`PLACEHOLDER_MARKERS`; an app started from a hand-copied example
    file would otherwise run with a key everyone can read.
    """
    hint = (
        f"Set {key} to a random string of at least {minimum} bytes, e.g."
        ' python -c "import secrets; print(secrets.token_urlsafe(48))".'
    )
    if value is None or value == "":
        raise ConfigurationError(f"{key} is not set. {hint}")
    if isinstance(value, str):
        secret = value.encode()
    elif isinstance(value, bytes):
        secret = value
    else:
        raise ConfigurationError(f"{key} must be a string. {hint}")
    if len(secret) < minimum:
        raise ConfigurationError(
            f"{key} is {len(secret)} bytes long; at least {minimum} are"
            f" required. {hint}"
        )
    if _is_placeholder(secret):
        raise ConfigurationError(
            f"{key} is a placeholder from an example or tutorial (or contains"
            f" 'change-me', 'replace-me' or 'your-secret'), which anyone can"
            f" read. {hint}"
        )
    return secret
