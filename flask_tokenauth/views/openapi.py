"""``GET <prefix>/openapi.json`` (``TOKENAUTH_OPENAPI_PATH``): the OpenAPI
3.1 description of this registration of the blueprint, for client
generators, gateways and fuzzers.

Built from the app's URL map, so it names the prefix the blueprint is
really mounted at and the flows the app really switched on; its server is
the app's root as this request reached it.  Built and encoded once per
registration and script root, then served from the app's state: the JSON
of about 170 kB costs some 20 ms of CPU to make, on a route anyone may
call without a token or a rate limit, and neither the URL map nor the
settings change once the app serves requests.  The cache holds a few
script roots only (a proxy may set one per request: ``X-Forwarded-Prefix``),
so a client inventing them costs the work, not memory.  Cached by clients
by ETag, and readable from any origin, like the public keys: it holds
nothing secret.
"""

from __future__ import annotations

import hashlib
import json
import threading

from flask import Response, current_app, request

from .._state import get_state
from ..openapi import openapi_document
from ._common import allow

#: How many (registration, script root) documents an app keeps: one per
#: mount in practice; beyond that the oldest is dropped.
CACHE_SIZE = 8
#: Guards the caches' eviction (a build runs outside it: two threads may
#: both make a missing document, and one keeps it).
_LOCK = threading.Lock()


def _encoded(registration: str, server_url: str) -> tuple[bytes, str]:
    """The document's JSON and its ETag, from the app's cache or made."""
    cache = get_state().openapi_cache
    key = (registration, server_url)
    found = cache.get(key)
    if found is None:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        document = openapi_document(app, registration, server_url)
        body = json.dumps(document, indent=1, sort_keys=False).encode()
        found = (body, hashlib.sha256(body).hexdigest()[:32])
        with _LOCK:
            while len(cache) >= CACHE_SIZE:
                del cache[next(iter(cache))]
            cache[key] = found
    return found


def openapi() -> Response:
    allow("GET", "HEAD")
    body, etag = _encoded(request.blueprint or "", request.script_root or "/")
    response = Response(body, content_type="application/json")
    response.set_etag(etag)
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.make_conditional(request)
    return response
