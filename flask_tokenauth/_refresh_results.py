"""What issuing, rotating and inspecting refresh tokens return (see
:mod:`._refresh`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ._authlevel import Assurance


@dataclass(frozen=True)
class IssuedToken:
    """A freshly issued refresh token: the only time the plain value exists."""

    token: str
    user_id: str
    family_id: str
    expires_at: datetime
    #: The session's identity fingerprint (see :mod:`._identity`).
    identity: str | None = None
    #: The session's ``email_verified`` claim (``None``: verification off).
    email_verified: bool | None = None
    #: How the session was authenticated (see :mod:`._authlevel`).
    assurance: Assurance | None = None


@dataclass(frozen=True)
class KnownToken:
    """A presented refresh token that is one of ours (see
    :meth:`RefreshTokens.known`)."""

    family_id: str
    user_id: str
    #: Unused, unrevoked and unexpired, in a live session: it would rotate.
    live: bool


@dataclass(frozen=True)
class Rotation:
    """The outcome of a successful refresh.

    ``issued`` is ``None`` when the presented token was the one rotated just
    before, within the reuse interval: the session stays valid, and the
    successor that the first request received remains the family's only
    live token.
    """

    user_id: str
    family_id: str
    issued: IssuedToken | None
    #: Whether the rotation statement also read the user's status (below),
    #: or the caller must ask the user store.
    user_checked: bool = False
    #: ``None`` if the session's user is gone, else whether it is active.
    user_active: bool | None = None
    #: The fingerprint the session is bound to (``None``: not bound yet).
    bound: str | None = None
    #: The user's identity value now, read with the status (as stored:
    #: ``str``, ``bytes``...); meaningful only if ``user_checked``.
    user_identity: Any = None
    #: The session's ``email_verified`` column, read by the rotation itself
    #: (``None``: started while verification was off, or before it existed).
    email_verified: bool | None = None
    #: The session's level, read by the rotation itself (see :mod:`._authlevel`).
    assurance: Assurance | None = None
