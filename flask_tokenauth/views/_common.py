"""What the view modules share, kept apart from :mod:`.` (which imports
them to build the blueprint), so that no view module imports it back."""

from __future__ import annotations

from flask import request

from ..errors import MethodNotAllowed

#: The blueprint's name, and so the prefix of its endpoints.
BLUEPRINT_NAME = "tokenauth"

#: Routes accept every method but OPTIONS (left to Flask, for CORS preflight)
#: so that a wrong method is answered by us, in JSON, not by the router.
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def allow(*methods: str) -> None:
    """Refuse the request with 405 unless its method is one of ``methods``."""
    if request.method not in methods:
        raise MethodNotAllowed(["OPTIONS", *methods])
