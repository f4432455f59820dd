"""The list of common passwords refused at registration and password change.

NIST SP 800-63B-4 (3.1.1.2) requires checking new passwords against a
blocklist of commonly used values; OWASP ASVS 5.0 (6.2.4) asks for at least
the 3,000 most common.  The package ships Royce Williams' list of 19,640
passwords as Django distributes it (``data/common-passwords.txt.gz``; source
and BSD licence in ``data/README.txt``).

The list is read on the first check, once per process, not at import: an app
that never registers anyone (a worker that only checks access tokens) never
pays for it.
"""

from __future__ import annotations

import gzip
import threading
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.abc import Traversable

_FILE = "data/common-passwords.txt.gz"

_lock = threading.Lock()
_passwords: frozenset[str] | None = None


def blocklist_file() -> Traversable:
    """The shipped list (a file inside the installed package)."""
    return resources.files("flask_tokenauth").joinpath(_FILE)


def common_passwords() -> frozenset[str]:
    """The blocklist, case-folded; read once per process, under a lock so
    that concurrent first requests read it once."""
    global _passwords
    if _passwords is None:
        with _lock:
            if _passwords is None:
                with (
                    blocklist_file().open("rb") as raw,
                    gzip.open(raw, "rt", encoding="utf-8") as text,
                ):
                    _passwords = frozenset(
                        line.strip().casefold() for line in text if line.strip()
                    )
    return _passwords


def is_common_password(visible: str) -> bool:
    """Whether ``visible`` (a password reduced to what a person sees, see
    :func:`flask_tokenauth._validation.visible_password`) is on the list,
    compared case-insensitively: ``PassWord1`` is as guessable as
    ``password1``."""
    return visible.casefold() in common_passwords()
