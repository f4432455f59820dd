"""Living with the host app's other extensions: Flask-Login and Flask-WTF.

Neither is a dependency: this module imports neither, and does nothing for
an app that does not use them.

**Flask-Login** (:func:`init_flask_login`): HTML pages keep Flask-Login's
session cookie; ``/api`` callers send ``Authorization: Bearer <token>``, and
Flask-Login's ``current_user`` sees them too::

    login_manager = LoginManager(app)
    app.register_blueprint(auth_bp)
    init_flask_login(app)

**Flask-WTF** (:func:`exempt_from_csrf`): ``CSRFProtect(app)`` would refuse
every POST to the blueprint with a 400 (no form token in a JSON body).  The
blueprint has its own CSRF defence (JSON-only bodies, a ``SameSite=Strict``
refresh cookie, an Origin check), so it exempts itself; nothing to do.
"""

from __future__ import annotations

import sys
from typing import Any

from flask import Flask, current_app
from flask import request as current_request
from flask.sessions import SessionInterface, SessionMixin
from flask.wrappers import Request, Response

from .errors import AuthenticationError, MfaEnrollmentRequired
from .globals import _get_user, authenticate

#: Request environ flag: Flask-Login's user of this request came from an
#: access token.  Not on ``g``, which a held app context shares between
#: requests (see ``globals._CLAIMS_KEY``): the next request would not save
#: its session.
_FROM_TOKEN = "flask_tokenauth.flask_login"

__all__ = ["exempt_from_csrf", "init_flask_login"]


# -- Flask-Login ---------------------------------------------------------------


def init_flask_login(app: Flask, login_manager: Any = None) -> None:
    """Make Flask-Login's ``current_user`` the token's user on requests that
    carry ``Authorization: Bearer <token>`` and no Flask-Login session.

    It registers a Flask-Login ``request_loader`` (a loader the app already
    has is kept, and asked when there is no Bearer header), and wraps
    ``app.session_interface`` so that a request authenticated by its token
    never saves the session: nothing it does (``login_user``, Flask-Login's
    remember-me refresh, ``session_protection``) can turn the token into a
    session cookie, which would outlive the token's revocation and ride along
    on cross-site requests.  Call it after any extension that replaces the
    session interface (Flask-Session).

    What Flask-Login sees, and why:

    - a valid token and no session user: the token's user, loaded as
      :data:`~flask_tokenauth.current_user` loads it (once per request);
    - an expired, revoked or malformed token: an anonymous user (Flask-Login's
      loaders return "nobody"; Flask-Login's own ``login_required`` then
      answers as it does for any visitor).  Protect API views with our
      :func:`~flask_tokenauth.login_required`, whose 401 tells the client to
      refresh;
    - a Flask-Login session user: that user, whatever token is sent (Flask-Login
      asks its session before any request loader).  Our
      :data:`~flask_tokenauth.current_user` is always the token's.

    :param login_manager: the ``flask_login.LoginManager`` (typed ``Any``:
        Flask-Login ships no type information); default ``app.login_manager``.
    """
    manager: Any = login_manager or getattr(app, "login_manager", None)
    if manager is None:
        raise RuntimeError(
            "init_flask_login(app) needs Flask-Login set up first:"
            " LoginManager(app) or login_manager.init_app(app)."
        )
    host_loader = manager.request_callback

    def load_user_from_token(request: Request) -> Any:
        if "HTTP_AUTHORIZATION" in request.environ:
            user = _token_user()
            if user is not None:
                return user
        return host_loader(request) if host_loader is not None else None

    if getattr(host_loader, "_tokenauth", False):
        return  # already set up on this manager
    load_user_from_token._tokenauth = True  # type: ignore[attr-defined]
    manager.request_loader(load_user_from_token)
    if not isinstance(app.session_interface, _NoSessionForTokens):
        app.session_interface = _NoSessionForTokens(app.session_interface)


def _token_user() -> Any:
    """The token's user, or ``None`` for a token we refuse (a session
    waiting for its second factor or for the user's enrolment too: not
    signed in, for Flask-Login).  An outage (503) is raised, not mistaken
    for "nobody"."""
    try:
        authenticate()
        user = _get_user()
    except (AuthenticationError, MfaEnrollmentRequired):
        return None
    current_request.environ[_FROM_TOKEN] = True
    return user


class _NoSessionForTokens(SessionInterface):
    """The app's session interface, except that a request whose Flask-Login
    user came from an access token does not save the session (Flask-Login's
    own recipe for header logins, "Disabling Session Cookie for APIs").

    Flask and its test client call the four methods below; the wrapped
    interface's cookie settings are read by its own ``save_session``, so a
    Flask-Session interface keeps its cookie, lifetime and storage.
    """

    def __init__(self, inner: SessionInterface) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        # Attributes of the wrapped interface's own (a store, a serializer).
        return getattr(self.inner, name)

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        return self.inner.open_session(app, request)

    def make_null_session(self, app: Flask) -> Any:
        return self.inner.make_null_session(app)

    def is_null_session(self, obj: object) -> bool:
        return self.inner.is_null_session(obj)

    def save_session(
        self, app: Flask, session: SessionMixin, response: Response
    ) -> None:
        if not current_request.environ.get(_FROM_TOKEN):
            self.inner.save_session(app, session, response)
            return
        # Flask-Login's after_request hook turns ``login_user(remember=True)``
        # into a remember-me cookie, from the session this request will not
        # save.  This runs after every after_request hook, whatever their
        # order, so it is the place to take that cookie back.
        name = app.config.get("REMEMBER_COOKIE_NAME", "remember_token")
        cookies = response.headers.getlist("Set-Cookie")
        kept = [c for c in cookies if not c.startswith(f"{name}=")]
        if len(kept) != len(cookies):
            del response.headers["Set-Cookie"]
            for cookie in kept:
                response.headers.add("Set-Cookie", cookie)


# -- Flask-WTF -------------------------------------------------------------------


def exempt_from_csrf(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """Exempt the blueprint's view of this request from Flask-WTF's
    ``CSRFProtect``, if the app has one.

    Registered on the blueprint as a ``url_value_preprocessor``: Flask runs
    those before every ``before_request`` hook, ``CSRFProtect``'s included,
    and only for the blueprint's own requests, so it works whether
    ``CSRFProtect(app)`` ran before or after the blueprint was registered,
    and costs the host's requests nothing.  The *view* is exempted, not the
    blueprint: ``CSRFProtect`` matches exempt blueprints by name in some
    versions, and a nested or renamed mount has another name.

    Flask-WTF is looked up in ``sys.modules``, never imported: an app that
    set up ``CSRFProtect`` has imported it.
    """
    module = sys.modules.get("flask_wtf.csrf")
    if module is None or endpoint is None:
        return
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    csrf = app.extensions.get("csrf")
    if isinstance(csrf, module.CSRFProtect):
        view = app.view_functions.get(endpoint)
        if view is not None:
            csrf.exempt(view)
