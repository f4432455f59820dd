"""The OpenAPI 3.1 description of what the blueprint serves.

One table (:mod:`._ops_core`, :mod:`._ops_mail`, :mod:`._ops_factors`, made of
the declarations of :mod:`._declare`) gives both the request bodies the
views read and the document served at ``<prefix>/openapi.json``
(``TOKENAUTH_OPENAPI_PATH``).  :func:`openapi_document` builds it for any
registration of the blueprint, e.g. to write it to a file in a build step.
"""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.sansio.app import App

from .._state import BLUEPRINT_NAME
from ._document import build, undescribed

__all__ = ["openapi_document", "undescribed_endpoints"]


def openapi_document(
    app: App | None = None, blueprint: str = BLUEPRINT_NAME, server_url: str = "/"
) -> dict[str, Any]:
    """The OpenAPI 3.1 document (a JSON-ready ``dict``) of the blueprint
    registered on ``app`` (the current app by default) under the name
    ``blueprint`` (its full dotted name when nested in another blueprint,
    e.g. ``"api.tokenauth"``); ``server_url`` is the document's server,
    the app's root as a client reaches it."""
    target = app if app is not None else current_app
    return build(target, blueprint, server_url)


def undescribed_endpoints(app: App, blueprint: str = BLUEPRINT_NAME) -> list[str]:
    """The blueprint's endpoints on ``app`` that the description lacks (a
    test of the library keeps this empty)."""
    return undescribed(app, blueprint)
