"""The operations of the public documents: the browser client
(``client.js``, ``client.d.ts``), the public keys (``TOKENAUTH_JWKS_PATH``)
and this description (``TOKENAUTH_OPENAPI_PATH``).

None needs a token, none reads a body; each is served with an ETag, so a
request that sends it back in ``If-None-Match`` gets a 304 without a body,
and each answers ``HEAD`` as ``GET`` without the body.  The keys and the
description are routes only while their path setting is set: a route the
app does not have is not described (the document is built from the URL
map), so they need no ``when``.
"""

from __future__ import annotations

from ._declare import Operation, Operations, Reply, Schema

_IF_NONE_MATCH: dict[str, Schema] = {
    "If-None-Match": {
        "type": "string",
        "description": "The ETag of the copy the client holds.",
    }
}
_NOT_MODIFIED = Reply(304, "The copy the client holds is current.", None, ("ETag",))

JWKS: Schema = {
    "type": "object",
    "description": (
        "RFC 7517: the public keys access tokens are verified with (empty while"
        " they are signed with a shared secret)."
    ),
    "properties": {
        "keys": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "kty": {"type": "string"},
                    "kid": {"type": "string"},
                    "alg": {"type": "string"},
                    "use": {"type": "string"},
                },
                "required": ["kty"],
            },
        }
    },
    "required": ["keys"],
}
DESCRIPTION: Schema = {
    "type": "object",
    "description": "This OpenAPI 3.1 document.",
    "properties": {
        "openapi": {"type": "string", "pattern": "^3\\.1\\."},
        "info": {"type": "object"},
        "paths": {"type": "object"},
        "components": {"type": "object"},
    },
    "required": ["openapi", "info", "paths"],
}


def _document(
    name: str, summary: str, tag: str, content_type: str, schema: Schema
) -> dict[str, Operation]:
    """``GET`` and ``HEAD`` of one public document (operation ids ``name``
    and ``name + "Head"``)."""
    replies = (Reply(200, summary + ".", schema, ("ETag",), content_type),)
    head = (Reply(200, summary + ", without the body.", None, ("ETag",)),)
    return {
        method: Operation(
            id=name if method == "GET" else name + "Head",
            summary=summary if method == "GET" else summary + " (headers only)",
            tag=tag,
            replies=(*answers, _NOT_MODIFIED),
            request_headers=_IF_NONE_MATCH,
        )
        for method, answers in (("GET", replies), ("HEAD", head))
    }


_TEXT: Schema = {"type": "string"}

OPERATIONS: Operations = {
    "client_js": _document(
        "getClientScript",
        "The browser client, an ES module",
        "client",
        "text/javascript",
        _TEXT,
    ),
    "client_types": _document(
        "getClientTypes",
        "The browser client's TypeScript declarations",
        "client",
        "application/typescript",
        _TEXT,
    ),
    "jwks": _document(
        "getJwks",
        "The public keys of the access tokens",
        "keys",
        "application/jwk-set+json",
        JWKS,
    ),
    "openapi": _document(
        "getOpenApi", "This API description", "meta", "application/json", DESCRIPTION
    ),
}
