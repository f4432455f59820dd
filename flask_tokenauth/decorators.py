"""``@login_required``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import current_app, request

from .globals import authenticate

F = TypeVar("F", bound=Callable[..., Any])

#: Methods that pass without a token: CORS preflight requests carry none.
EXEMPT_METHODS = frozenset({"OPTIONS"})


def login_required(view: F) -> F:
    """Refuse the request with a 401 JSON error unless it carries a valid
    access token in ``Authorization: Bearer <token>``.

    Works on sync and async views.  Verification uses only the token; the
    revocation check is a dict lookup with Redis, one query with the database
    store, nothing when off.  :data:`~flask_tokenauth.current_user` loads the
    user only if the view uses it.  An expired token answers
    ``{"error": "Token expired", "code": "TOKEN_EXPIRED"}``, the client's cue
    to call ``/refresh``.
    """

    # Decided once here rather than by ``ensure_sync`` on every request.
    if inspect.iscoroutinefunction(view):

        @wraps(view)
        def decorated(*args: Any, **kwargs: Any) -> Any:
            if request.method not in EXEMPT_METHODS:
                authenticate()
            return current_app.ensure_sync(view)(*args, **kwargs)

        return cast(F, decorated)

    @wraps(view)
    def decorated_sync(*args: Any, **kwargs: Any) -> Any:
        if request.environ["REQUEST_METHOD"] not in EXEMPT_METHODS:
            authenticate()
        return view(*args, **kwargs)

    return cast(F, decorated_sync)
