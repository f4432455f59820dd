"""Helpers for a host application's own tests: a signed-in client or
headers for a user in one line, as Flask-Login's ``FlaskLoginClient``.

::

    from flask_tokenauth.testing import TokenAuthClient, auth_headers

    app.test_client_class = TokenAuthClient
    client = app.test_client(user=alice)        # every request as alice
    client.get("/api/profile")

    app.test_client().get("/api/profile", headers=auth_headers(alice, app))

Each call starts a *real* session for the user: a session row and its first
refresh token, written with the package's own
:meth:`~flask_tokenauth._refresh.RefreshTokens.start_family` in one
transaction, and an access token for that session.  So the token passes every
revocation store (database, Redis, off), :data:`~flask_tokenauth.current_user`
loads the user, and revoking the user's sessions refuses it as it would a
token from ``/login``.  What the helper skips is the cost of a login: no
HTTP request, no password and so no bcrypt, no rate limits, no signals.

The pytest fixtures of :mod:`pytest_flask_tokenauth` wrap these.

.. versionadded:: 0.1
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Flask, current_app
from flask.testing import FlaskClient

from . import _migrate, _outbox
from ._access import is_user_id
from ._authlevel import MFA, OTP, PWD, Assurance, now_seconds
from ._state import get_state, load_user
from ._verification import claim_of_sub
from .views.auth import refresh_paths

#: The ``User-Agent`` recorded on the sessions the helpers start, so that a
#: test (or a session list) can tell them from real logins.
USER_AGENT = "flask_tokenauth.testing"


def user_id_of(user: Any) -> int | str | uuid.UUID:
    """The id of ``user``: a user object or an id, as it is given.

    A user object is read through ``get_id()`` when it has one (as
    Flask-Login's ``UserMixin``), else its ``id`` attribute.  A canonical
    decimal string (what ``get_id()`` returns for an integer key) is turned
    back into an ``int``.  The user store then says which user the id names
    (its ``to_sub``: ``"01"`` is refused, an upper-case UUID is that UUID).
    """
    if isinstance(user, (int, str, uuid.UUID)) and not isinstance(user, bool):
        value: Any = user
    elif callable(getattr(user, "get_id", None)):
        value = user.get_id()
    elif hasattr(user, "id"):
        value = user.id
    else:
        raise TypeError(
            "Pass a user object (with get_id() or an id attribute) or a user"
            f" id, not {type(user).__name__}."
        )
    if isinstance(value, str) and is_user_id(value):
        return int(value)
    if isinstance(value, bool) or not isinstance(value, (int, str, uuid.UUID)):
        raise TypeError(
            f"A user id is an int, a str or a UUID, not {type(value).__name__}."
        )
    return value


@dataclass(frozen=True)
class StartedSession:
    """A session started by :func:`start_session` for a test.

    :ivar refresh_token: the plain refresh token (the cookie's value), for a
        test that drives ``/refresh`` or ``/logout`` itself.
    """

    #: The user's id in the store's own type (``int``, ``UUID``, ``str``).
    user_id: Any
    session_id: str
    access_token: str
    refresh_token: str
    #: The app's first ``TOKENAUTH_HEADER_TYPES`` ("" for a bare token).
    header_type: str = "Bearer"

    @property
    def headers(self) -> dict[str, str]:
        """``{"Authorization": "Bearer <access token>"}`` (or the app's first
        header type)."""
        value = f"{self.header_type} {self.access_token}".lstrip()
        return {"Authorization": value}


def start_session(
    user: Any,
    app: Flask | None = None,
    *,
    aal: int = 1,
    amr: Sequence[str] | None = None,
    auth_time: datetime | None = None,
) -> StartedSession:
    """Start a session for ``user`` (a user object or an id) on ``app``
    (default: the current app) without a request.

    The session is never restricted (a test of a view means to reach it,
    second factor or not).  Its level is a password login now, unless:

    :param aal: ``2``: as after a second factor (``amr`` ``pwd otp mfa``),
        for views with ``@login_required(aal=2)``.
    :param amr: the ``amr`` claim, if not the one ``aal`` implies.
    :param auth_time: when the user authenticated (an old one, to test a
        view with ``@login_required(fresh=...)``); default: now.

    :raises LookupError: if the app's user loading finds no such user: a
        token for a missing user would fail every request with
        ``USER_NOT_FOUND``, far from the typo that caused it.
    :raises ValueError: ``user`` is an id the user store refuses (``"01"``
        for an integer key, a malformed UUID).
    :raises RuntimeError: if flask_tokenauth is not set up on ``app``.
    """
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    user_id = user_id_of(user)
    # An app context of the app's own: the user loader and the app's
    # additional_claims loader may use the host's extensions (Flask-SQLAlchemy).
    with app.app_context():
        state = get_state(app)
        store = state.user_store
        sub = store.to_sub(user_id)
        if load_user(state, sub) is None:
            raise LookupError(
                f"No user with id {user_id!r}: create the user before asking"
                " flask_tokenauth.testing for a token."
            )
        verified = claim_of_sub(state, sub)
        if amr is None:
            amr = (PWD,) if aal < 2 else (PWD, OTP, MFA)
        when = now_seconds() if auth_time is None else int(auth_time.timestamp())
        level = Assurance(tuple(amr), aal, when)
        with state.db.begin() as conn:
            issued = state.refresh_tokens.start_family(
                conn,
                sub,
                user_agent=USER_AGENT,
                email_verified=verified,
                assurance=level,
            )
        access = state.access_tokens.issue(
            sub, issued.family_id, email_verified=verified, assurance=level
        )
    header_type = state.settings.header_types[0]
    return StartedSession(
        store.user_id(sub), issued.family_id, access, issued.token, header_type
    )


def access_token_for(user: Any, app: Flask | None = None) -> str:
    """An access token of a new session for ``user``; see :func:`start_session`."""
    return start_session(user, app).access_token


def auth_headers(user: Any, app: Flask | None = None) -> dict[str, str]:
    """``{"Authorization": "Bearer <token>"}`` for ``user``, for a test that
    builds its own requests; see :func:`start_session`."""
    return start_session(user, app).headers


def wait_for_mail(app: Flask | None = None, timeout: float = 60.0) -> None:
    """Wait until the mails (and the flows' after-response work) deferred
    so far in this process have been handed to the sender, or have failed:
    then a test reads the mailbox (Flask-Mail's ``record_messages()``,
    Flask-Mailman's ``outbox``, its own SMTP server) without polling.

    :param app: wait for this app's work only; default: every app's.
    :param timeout: seconds; ``TimeoutError`` after them (a sender that
        never returns).
    """
    if not _outbox.wait_idle(app, timeout):
        raise TimeoutError(f"the tokenauth outbox was still busy after {timeout}s")


def create_tables(app: Flask | None = None) -> None:
    """Create our tables in the test database of ``app`` (default: the
    current app) without running the migrations: ``metadata.create_all``
    and a stamp, in milliseconds.  Call it where your tests create their own
    tables (after ``db.create_all()``); :func:`drop_tables` undoes it.  The
    pytest fixture ``tokenauth_tables`` does both."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    _migrate.create_tables(get_state(app).db.engine)


def drop_tables(app: Flask | None = None) -> None:
    """Drop our tables (and our version table) from the database of ``app``
    (default: the current app); the app's own are not touched."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    _migrate.drop_tables(get_state(app).db.engine)


def refresh_cookie_paths(app: Flask) -> list[str]:
    """The paths the refresh cookie is set at: ``TOKENAUTH_COOKIE_PATH``, or
    the path of every mount of the blueprint's ``/refresh`` (as the cookie a
    real login sets, which follows the mount; see ``_headers.cookie_path``)."""
    settings = get_state(app).settings
    if settings.cookie_path is not None:
        return [settings.cookie_path]
    return refresh_paths(app)


class TokenAuthClient(FlaskClient):
    """A test client signed in as a user::

        app.test_client_class = TokenAuthClient
        client = app.test_client(user=alice)

    Every request carries ``Authorization: Bearer <token>`` for a session
    started by :func:`start_session` (a request's own ``headers=`` override
    it), and the client holds that session's refresh cookie, so ``/refresh``
    and ``/logout`` work too.  Without ``user`` it is a plain client.

    :ivar tokenauth_session: the :class:`StartedSession`, or ``None``.
    """

    def __init__(self, *args: Any, user: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tokenauth_session: StartedSession | None = None
        if user is not None:
            self.sign_in(user)

    def sign_in(self, user: Any) -> StartedSession:
        """Act as ``user`` from now on, in a new session of theirs."""
        app = self.application
        session = start_session(user, app)
        self.environ_base["HTTP_AUTHORIZATION"] = session.headers["Authorization"]
        if self._cookies is not None:  # use_cookies=False keeps no jar
            settings = get_state(app).settings
            for path in refresh_cookie_paths(app):
                self.set_cookie(settings.cookie_name, session.refresh_token, path=path)
        self.tokenauth_session = session
        return session
