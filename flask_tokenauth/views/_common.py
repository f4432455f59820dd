"""What the view modules share, kept apart from :mod:`.` (which imports
them to build the blueprint), so that no view module imports it back."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import Response, current_app, jsonify, request

from .. import _lockout as lockout
from .._ratelimit import MAIL, check
from .._state import BLUEPRINT_NAME as BLUEPRINT_NAME
from .._state import TokenAuthState, get_state
from ..errors import MethodNotAllowed, NotFound, WrongPassword

#: Routes accept every method but OPTIONS (left to Flask, for CORS preflight)
#: so that a wrong method is answered by us, in JSON, not by the router.
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def allow(*methods: str) -> None:
    """Refuse the request with 405 unless its method is one of ``methods``;
    its ``Allow`` names ``OPTIONS`` too while the app answers it
    (``PROVIDE_AUTOMATIC_OPTIONS``, see :mod:`.`): not when the 405 is the
    answer to an ``OPTIONS``."""
    if request.method not in methods:
        if current_app.config["PROVIDE_AUTOMATIC_OPTIONS"]:
            methods = ("OPTIONS", *methods)
        raise MethodNotAllowed(list(methods))


F = TypeVar("F", bound=Callable[..., Any])


def switched(setting: str) -> Callable[[F], F]:
    """Answer 404 ``NOT_FOUND`` (before any other check: the endpoint does
    not exist) while the boolean setting ``setting`` is off."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not getattr(get_state().settings, setting):
                raise NotFound()
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorate


def mail_flow(setting: str | None) -> Callable[[F], F]:
    """A view of a mail flow: ``404 NOT_FOUND`` (the endpoint does not
    exist) while the boolean setting ``setting`` is off or the user store
    has no addresses; then the per-client limit of every endpoint that may
    send mail (``TOKENAUTH_RATELIMIT_MAIL``), before anything else.
    ``setting=None``: the store's addresses only (the flow checks more)."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            state = get_state()
            if not state.user_store.has_email or (
                setting is not None and not getattr(state.settings, setting)
            ):
                raise NotFound()
            check(MAIL)
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorate


def accepted(message: str) -> Response:
    """The ``202`` of a request whose mail (if any) goes out after the
    response: the same body whatever the address."""
    response = jsonify(message=message)
    response.status_code = 202
    return response


def check_current_password(
    state: TokenAuthState, user: Any, password: str
) -> lockout.Guard:
    """Check the signed-in ``user``'s current ``password`` (``/password``,
    ``/change-email``) on the account's budget of wrong passwords, shared
    with ``/login`` (see :mod:`.._lockout`); the guard, whose
    ``trust_device`` the caller applies to its answer.

    :raises RateLimited: the budget is spent; the password is not checked.
    :raises WrongPassword: counted against the budget.
    """
    store = state.user_store
    attempt = lockout.guard(state, lockout.account_of(store, user, ""))
    # A NUL is in no password we accept (as /login refuses it): checked, it
    # would raise in passlib's sha*_crypt (a 500), and match a PBKDF2 hash
    # of the password without it (HMAC pads its key with zeros).
    if (
        len(password) > state.settings.password_max_length
        or "\x00" in password
        or not store.verify_password(user, password)
    ):
        attempt.failed()
        raise WrongPassword()
    return attempt
