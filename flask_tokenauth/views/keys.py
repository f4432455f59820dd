"""``GET /.well-known/jwks.json`` (``TOKENAUTH_JWKS_PATH``): the public keys
other services verify our access tokens with (RFC 7517).

Public members only, never an HMAC secret: an app that signs with HMAC
serves an empty set (``{"keys": []}``), so a verifier pointed at it gets a
valid document that names no key rather than an error, and the URL answers
the same before and after the app moves to an asymmetric key.  Cached for
``TOKENAUTH_JWKS_MAX_AGE`` (shorter than the access-token lifetime, so that
a key announced before it signs reaches every verifier in time) with an
ETag, and readable from any origin: the keys are public.
"""

from __future__ import annotations

from flask import Response, request

from .._state import get_state
from ._common import allow


def jwks() -> Response:
    allow("GET", "HEAD")
    state = get_state()
    keys = state.access_tokens.keys
    response = Response(keys.jwks_json, content_type="application/jwk-set+json")
    response.set_etag(keys.jwks_etag)
    max_age = int(state.settings.jwks_max_age.total_seconds())
    response.headers["Cache-Control"] = f"public, max-age={max_age}"
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.make_conditional(request)  # 304 on a matching If-None-Match
    return response
