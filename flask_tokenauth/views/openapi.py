"""``GET <prefix>/openapi.json`` (``TOKENAUTH_OPENAPI_PATH``): the OpenAPI
3.1 description of this registration of the blueprint, for client
generators, gateways and fuzzers.

Built from the app's URL map on each request (about a millisecond; see
:mod:`flask_tokenauth.openapi`), so it names the prefix the blueprint is
really mounted at and the flows the app really switched on; its server is
the app's root as this request reached it.  Cached by clients by ETag, and
readable from any origin, like the public keys: it holds nothing secret.
"""

from __future__ import annotations

import hashlib
import json

from flask import Response, current_app, request

from ..openapi import openapi_document
from ._common import allow


def openapi() -> Response:
    allow("GET", "HEAD")
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    document = openapi_document(
        app, request.blueprint or "", request.script_root or "/"
    )
    body = json.dumps(document, indent=1, sort_keys=False)
    response = Response(body, content_type="application/json")
    response.set_etag(hashlib.sha256(body.encode()).hexdigest()[:32])
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.make_conditional(request)
    return response
