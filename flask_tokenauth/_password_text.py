"""What a password is as a person sees and types it: the characters that
count towards its length, and the form it is compared in against the list of
common passwords and the context-specific words.

Only the checks use these forms; what is hashed is always the password as
sent.  No Flask here: ``data/build_blocklist.py`` normalizes the shipped list
with the same functions, so a list entry and a typed password meet in one
form.
"""

from __future__ import annotations

import unicodedata

#: Code points that render as nothing, or as a blank, without being of one of
#: the categories of :data:`_BLANK_CATEGORIES`: the rest of Unicode's
#: Default_Ignorable_Code_Point property (Hangul fillers, the combining
#: grapheme joiner, Khmer inherent vowels, Mongolian free variation
#: selectors, variation selectors, the unassigned ignorables) and the braille
#: pattern blank U+2800, a symbol (So) that draws an empty cell.
_BLANK_CODE_POINTS = frozenset(
    [
        *(0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180B, 0x180C, 0x180D, 0x180F),
        *(0x2800, 0x3164, 0xFFA0, *range(0xFE00, 0xFE10), *range(0xFFF0, 0xFFF9)),
        *range(0x2060, 0x2070),
        *range(0xE0000, 0xE1000),
    ]
)

#: Controls, format characters (zero-width space and joiners, bidi marks,
#: soft hyphen, BOM, tags) and every kind of space and line or paragraph
#: separator.
_BLANK_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})


def is_blank(char: str) -> bool:
    """Whether ``char`` shows nothing a person could read back: invisible,
    or a space of some kind."""
    return (
        ord(char) in _BLANK_CODE_POINTS
        or unicodedata.category(char) in _BLANK_CATEGORIES
    )


def visible_characters(value: str) -> str:
    """``value`` NFKC-normalized (NIST SP 800-63B-4 3.1.1.2: a composed and a
    decomposed ``é`` count alike, full-width letters are ASCII ones) without
    its blank characters (:func:`is_blank`).

    Its length is the password's length for the minimum: eight zero-width
    spaces, eight braille blanks or eight spaces are an empty password, not
    an 8-character one, and the spaces between the words of a passphrase
    do not count either (its letters do, which a passphrase has plenty of).
    """
    normalized = unicodedata.normalize("NFKC", value)
    return "".join(c for c in normalized if not is_blank(c))


def _ascii_digit(char: str) -> str:
    """A decimal digit of any script (Arabic-Indic ``٣``, Devanagari ``३``...)
    as the ASCII digit of the same value: ``١٢٣٤٥٦٧٨`` is ``12345678`` to
    anyone guessing."""
    value = unicodedata.digit(char, None)
    return str(value) if value is not None and value < 10 else char


def normalize_password(value: str) -> str:
    """The form a password is compared in: :func:`visible_characters`,
    case-folded, with every digit ASCII (and NFKC again, as case folding can
    make characters NFKC changes).  ``PassWord1`` with a zero-width space
    inside, a full-width ``1`` and a braille blank at the end, and
    ``password1``, are the same password here."""
    folded = visible_characters(value).casefold()
    return unicodedata.normalize("NFKC", "".join(_ascii_digit(c) for c in folded))


def letters_and_digits(normalized: str) -> str:
    """A :func:`normalize_password` form without punctuation, for finding a
    word inside a password whatever separates its parts: ``j.smith`` in
    ``JSmith-2024!``, ``Acme Shop`` in ``acme_shop!``."""
    return "".join(c for c in normalized if c.isalnum())
