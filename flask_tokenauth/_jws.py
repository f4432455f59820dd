"""A compact JWS taken apart: split, base64url-decoded, JSON-parsed, and
nothing more.  The signature itself is checked by PyJWT's algorithm object
(see :meth:`~._keys.SigningKey.verify`).

Why not ``jwt.decode``: for every token it prepares the key again (for an
HMAC secret, a JSON parse and two attempts at loading it as a DER key), and
validates base64 one character at a time in Python, which costs more than
the HMAC.  Here the whole token is checked against the base64url alphabet in
one C call, each segment is decoded by :mod:`binascii`, and the key was
prepared once, when it was loaded.

What PyJWT refuses, this refuses too (a differential test holds it to
that: ``tests/test_verify_differential.py``), and a little more: padding
(``=``), a trailing-bits variant of a segment (a segment must be the one
canonical encoding of its bytes), whitespace around the JSON, and JSON's
non-standard ``NaN`` and ``Infinity``.  None of these is in a token we issue.
"""

from __future__ import annotations

import binascii
import json
from typing import Any

from .errors import TokenInvalid

#: The base64url alphabet and the dot between segments.
_TOKEN_CHARACTERS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
#: base64url to the standard alphabet :mod:`binascii` decodes.
_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_PADDING = (b"", b"", b"==", b"=")
#: The last character of a segment whose length is 2 or 3 modulo 4 also
#: encodes 4 or 2 unused bits; they must be zero, as in the one canonical
#: encoding (PyJWT checks this by encoding the bytes again).
_CANONICAL_LAST: tuple[frozenset[int], ...] = (
    frozenset(),
    frozenset(),
    frozenset(b"AQgw"),
    frozenset(b"AEIMQUYcgkosw048"),
)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_decoder = json.JSONDecoder(parse_constant=_refuse_constant)


def split(token: str) -> tuple[bytes, bytes, bytes, bytes]:
    """``(header segment, signing input, payload segment, signature
    segment)`` of a compact JWS: three segments of base64url characters.

    :raises TokenInvalid: any other character, or another number of dots.
    """
    if not token.isascii():
        raise TokenInvalid()
    raw = token.encode()
    # ``translate`` deletes every allowed character: what is left is not.
    if raw.translate(None, _TOKEN_CHARACTERS):
        raise TokenInvalid()
    signing_input, dot, signature = raw.rpartition(b".")
    header, dot_, payload = signing_input.partition(b".")
    if not (dot and dot_) or b"." in payload:
        raise TokenInvalid()
    return header, signing_input, payload, signature


def decode_segment(segment: bytes) -> bytes:
    """The bytes of one segment of :func:`split` (base64url characters
    only, already checked there), unpadded and canonical.

    :raises TokenInvalid: a length no encoding has, or non-zero unused bits.
    """
    remainder = len(segment) % 4
    if remainder == 1 or (remainder and segment[-1] not in _CANONICAL_LAST[remainder]):
        raise TokenInvalid()
    return binascii.a2b_base64(segment.translate(_TO_STANDARD) + _PADDING[remainder])


def json_object(data: bytes) -> dict[str, Any]:
    """``data``, UTF-8 JSON text of one object, parsed.

    :raises TokenInvalid: anything else (including nesting too deep to parse).
    """
    try:
        text = data.decode()
        value, end = _decoder.raw_decode(text)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        raise TokenInvalid() from e
    if end != len(text) or type(value) is not dict:
        raise TokenInvalid()
    return value
