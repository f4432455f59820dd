"""The extension object: it builds an application's state (see
:mod:`._state`), adds the CLI and the app-wide security headers."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask
from flask.sansio.app import App

from . import _identity as identity
from ._access import AccessTokens
from ._claims import ClaimsLoader
from ._config import Settings
from ._db import Database, EngineSource
from ._dbmirror import RevocationCopy
from ._default_db import default_engine
from ._headers import add_security_headers
from ._keysdir import KeysWatcher
from ._limiter import make_limiter
from ._mail import choose_sender
from ._refresh import RefreshTokens
from ._revocation import (
    DatabaseRevocation,
    NoRevocation,
    RedisRevocation,
    RevocationStore,
)
from ._state import EXTENSION_KEY, TokenAuthState, UserLoader, load_user
from .cli import tokenauth_cli
from .errors import ConfigurationError
from .userstore import BuiltinUserStore, UserStore

logger = logging.getLogger("flask_tokenauth")


class TokenAuth:
    """Set up token authentication on an application.

    Registering :data:`~flask_tokenauth.auth_bp` is enough on its own; use
    this class when you want to pass options in code::

        auth = TokenAuth(engine=db.engine)
        auth.init_app(app)
        app.register_blueprint(auth_bp)

    :param app: call :meth:`init_app` on it right away.
    :param engine: a SQLAlchemy engine, or a callable returning one, to use
        instead of ``TOKENAUTH_DATABASE_URL``.  Without either, the app's
        Flask-SQLAlchemy engine if it has one (set up before or after this),
        else ``SQLALCHEMY_DATABASE_URI``, else ``instance/tokenauth.sqlite3``.
    :param user_store: where the users live: a
        :class:`~flask_tokenauth.userstore.SQLAlchemyUserStore` over the
        app's own model, or by default the built-in table
        (:class:`~flask_tokenauth.userstore.BuiltinUserStore`).
    :param user_loader: ``f(sub) -> user`` loading the user that
        :data:`~flask_tokenauth.current_user` returns; ``None`` means "no such
        user".  By default the user store's user named by ``sub``.
    :param config: ``TOKENAUTH_*`` values (lower-case, without the prefix)
        that take precedence over ``app.config``.
    :param additional_claims: ``f(sub) -> dict``, or ``f(sub, user) ->
        dict`` to receive the user object too (a parameter named ``user``),
        returning claims of the app's own to put into every access token
        issued (register, login, refresh, password change), as
        Flask-JWT-Extended's ``additional_claims_loader``; they are read back
        with :data:`~flask_tokenauth.current_claims`.  The reserved claims
        (``sub``, ``iat``, ``exp``, ``nbf``, ``iss``, ``aud``, ``jti``,
        ``sid``, ``typ``) cannot be set: naming one raises ``ValueError``
        when a token is issued.  See also :meth:`additional_claims_loader`.

    :meth:`init_app` takes the same options (Flask's extension convention);
    for that app, each one given there replaces the constructor's, and
    ``config`` is merged over the constructor's, key by key.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        engine: EngineSource | None = None,
        user_store: UserStore | None = None,
        user_loader: UserLoader | None = None,
        config: dict[str, Any] | None = None,
        additional_claims: ClaimsLoader | None = None,
    ) -> None:
        self.engine = engine
        self.user_store = user_store
        self.user_loader = user_loader
        self.config = dict(config or {})
        self.additional_claims = additional_claims
        #: Set by init_app: a loader registered later would reach no app.
        self._set_up = False
        if app is not None:
            self.init_app(app)

    def additional_claims_loader(self, loader: ClaimsLoader) -> ClaimsLoader:
        """Decorator form of the ``additional_claims`` option::

            auth = TokenAuth()

            @auth.additional_claims_loader
            def claims(sub: str) -> dict[str, Any]:
                return {"email": load_email(sub)}

            auth.init_app(app)

        :raises RuntimeError: if :meth:`init_app` already ran: each app keeps
            the loader it was set up with.
        """
        if self._set_up:
            raise RuntimeError(
                "Register the additional_claims loader before"
                " TokenAuth.init_app(app), or pass TokenAuth(additional_claims=...)."
            )
        self.additional_claims = loader
        return loader

    def init_app(
        self,
        app: App,
        *,
        engine: EngineSource | None = None,
        user_store: UserStore | None = None,
        user_loader: UserLoader | None = None,
        config: dict[str, Any] | None = None,
        additional_claims: ClaimsLoader | None = None,
    ) -> None:
        """Validate the configuration and set up the state of ``app``.

        Takes every option the constructor takes: one given here wins over
        the constructor's for this app only (the object keeps no app, so a
        factory can pass each app its own store); ``config`` is merged over
        the constructor's.

        :raises ConfigurationError: naming the key to set, if the
            configuration is invalid.
        :raises RuntimeError: if the extension is already set up on ``app``.
        """
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                "flask_tokenauth is already set up on this app. Call"
                " TokenAuth.init_app(app) before app.register_blueprint(auth_bp),"
                " and only once."
            )
        settings = Settings.from_mapping(app.config, {**self.config, **(config or {})})
        _warn_hmac_beside_keys(settings)
        # Explicit ``is None``: an option given here wins, whatever its truth.
        engine = self.engine if engine is None else engine
        db = Database(*default_engine(app, settings, engine))
        # A store per app: the built-in one keeps the app's database.
        if user_store is None:
            user_store = self.user_store or BuiltinUserStore()
        user_store.bind(settings, db)
        state = TokenAuthState(
            settings=settings,
            db=db,
            access_tokens=AccessTokens(
                settings,
                self.additional_claims
                if additional_claims is None
                else additional_claims,
                is_subject=user_store.is_subject,
                # ``state`` is assigned below, before any token is issued.
                load_user=lambda sub: load_user(state, sub),
            ),
            refresh_tokens=RefreshTokens(
                settings.refresh_secret,
                settings.refresh_expires,
                idle_timeout=settings.idle_timeout,
                reuse_interval=settings.reuse_interval,
                user_status=lambda sub: identity.status_sql(user_store, sub, db),
                async_commit=settings.refresh_async_commit,
            ),
            user_loader=self.user_loader if user_loader is None else user_loader,
            revocation=_revocation_store(
                settings, db, isinstance(user_store, BuiltinUserStore)
            ),
            limiter=make_limiter(settings),
            user_store=user_store,
            header_schemes=frozenset(t.lower() for t in settings.header_types),
        )
        # Refuses MAIL_* settings that cannot work, before the app serves.
        state.mail_sender = choose_sender(app, settings)
        app.extensions[EXTENSION_KEY] = state
        user_store.attach(app)
        if settings.keys_dir is not None:
            watcher = KeysWatcher(
                settings.keys_dir,
                settings.keys_reload_interval.total_seconds(),
                settings.signing_key_password,
                settings.access_secret,
                app.extensions[EXTENSION_KEY].access_tokens.use_keys,
            )
            # App-wide: the host's protected views verify tokens too.
            app.before_request(watcher.check)
        self._set_up = True
        if settings.security_headers_app_wide:
            app.after_request(add_security_headers)
        app.cli.add_command(tokenauth_cli)


def _warn_hmac_beside_keys(settings: Settings) -> None:
    """Log, once per app at start-up, that ``TOKENAUTH_ACCESS_SECRET`` still
    verifies beside an asymmetric key.

    It is kept so that the HS256 tokens signed before the move stay valid
    until they expire; after that it only lets whoever holds the secret
    (every service that was given it) mint tokens the app accepts, with no
    end date.  Unsetting it is the operator's step: this says when.
    """
    if settings.access_secret is None or settings.keys.signing.is_hmac:
        return
    source = "TOKENAUTH_KEYS_DIR" if settings.keys_dir else "TOKENAUTH_SIGNING_KEY"
    logger.warning(
        "TOKENAUTH_ACCESS_SECRET is set beside %s: HS256 tokens signed with it"
        " are still accepted, for as long as it is set. Once the tokens it"
        " signed before the move to %s have expired (TOKENAUTH_ACCESS_EXPIRES,"
        " %s after the move), unset TOKENAUTH_ACCESS_SECRET.",
        source,
        settings.keys.signing.algorithm,
        settings.access_expires,
    )


def _revocation_store(
    settings: Settings, db: Database, builtin_users: bool
) -> RevocationStore:
    if settings.revocation == "off":
        return NoRevocation()
    if settings.revocation == "database":
        copy = RevocationCopy(
            db,
            settings.revocation_staleness,
            settings.access_expires + settings.leeway,
            settings.revocation_listen_url,
        )
        return DatabaseRevocation(db, builtin_users, copy)
    assert settings.redis_url is not None
    try:
        return RedisRevocation.from_url(
            settings.redis_url,
            settings.redis_prefix,
            settings.access_expires + settings.leeway,
            settings.revocation_fail_open,
        )
    except ImportError:
        raise ConfigurationError(
            "TOKENAUTH_REDIS_URL needs the redis package: pip install"
            " 'redis>=5' (the extra 'flask-tokenauth-jwt[redis]' of this"
            " distribution)."
        ) from None
