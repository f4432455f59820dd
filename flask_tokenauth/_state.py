"""The per-application state of the extension, and how code reaches it.

A leaf of the package: it imports the building blocks the state is made of,
never the modules that read it (views, hooks, CLI), so every one of them can
import :func:`get_state` at the top.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import current_app
from flask.sansio.app import App

from ._access import AccessTokens
from ._config import Settings
from ._db import Database
from ._identity import matches, of_user
from ._identity import read as read_identity
from ._limiter import RateLimiter
from ._passwords import dummy_hash
from ._refresh import RefreshTokens
from ._revocation import RevocationStore

if TYPE_CHECKING:
    from ._mail_senders import Sender
    from .userstore import UserStore

EXTENSION_KEY = "tokenauth"
#: The blueprint's name, and so the prefix of its endpoints.
BLUEPRINT_NAME = "tokenauth"

#: Loads the user an access token names; receives the ``sub`` claim.
UserLoader = Callable[[str], Any]


@dataclass
class TokenAuthState:
    """Everything the extension keeps for one application, stored in
    ``app.extensions["tokenauth"]``.  The extension object keeps none of it,
    so one :class:`TokenAuth` can serve several apps."""

    settings: Settings
    db: Database
    access_tokens: AccessTokens
    refresh_tokens: RefreshTokens
    user_loader: UserLoader | None
    revocation: RevocationStore
    limiter: RateLimiter
    #: Where the users live (see :mod:`flask_tokenauth.userstore`).
    user_store: UserStore
    #: ``TOKENAUTH_HEADER_TYPES`` lower-cased, read by every protected
    #: request (see :func:`~flask_tokenauth.globals.bearer_token`).
    header_schemes: frozenset[str] = frozenset({"bearer"})
    #: Delivers the account mails (see :mod:`._mail`); ``None`` until the
    #: first mail when start-up could not decide (or no flow sends mail).
    mail_sender: Sender | None = None
    #: The served API description, made once per registration of the
    #: blueprint and script root (see :mod:`.views.openapi`): its JSON and
    #: ETag.  Per app, as everything here; bounded there.
    openapi_cache: dict[tuple[str, str], tuple[bytes, str]] = field(
        default_factory=dict
    )

    @property
    def dummy_hash(self) -> str:
        """A real bcrypt hash at the configured cost, checked for unknown
        emails.  Made on first use and shared by the process (see
        :func:`~flask_tokenauth._passwords.dummy_hash`): creating an app does
        no bcrypt work."""
        return dummy_hash(self.settings.bcrypt_rounds)


def get_state(app: App | None = None) -> TokenAuthState:
    """The state of ``app`` (default: the current app)."""
    app = app or current_app
    try:
        return app.extensions[EXTENSION_KEY]  # type: ignore[no-any-return]
    except KeyError:
        raise RuntimeError(
            "flask_tokenauth is not set up on this app: call"
            " app.register_blueprint(auth_bp) or TokenAuth(app)."
        ) from None


def load_user(state: TokenAuthState, sub: str, bound: str | None = None) -> Any:
    """The user named by ``sub``, or ``None``; also ``None`` if the token's
    session is ``bound`` to another identity (see :mod:`._identity`): the
    id names someone else now, or the password was changed."""
    if state.user_loader is not None:
        # The host's loader returns what it likes: the binding is checked
        # against the store's own value, read for a bound token only.
        if bound is not None and not matches(bound, read_identity(state, sub)):
            return None
        return state.user_loader(sub)
    user = state.user_store.get(sub)
    if user is None or not state.user_store.is_active(user):
        return None
    if bound is not None and not matches(bound, of_user(state, user)):
        return None
    return user
