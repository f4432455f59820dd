"""``GET /client.js`` and ``GET /client.d.ts``: the browser client.

The files live in ``static/`` inside the package.  They are served with an
ETag and ``Cache-Control: no-cache`` (a browser revalidates and gets a 304
until the package is upgraded), or, at the versioned URL of
:func:`client_script_url`, as immutable for a year.  Either way with
``Access-Control-Allow-Origin: *``: they are public, and a page on another
origin must be allowed to import the module.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

from flask import Response, request, url_for

from ._common import BLUEPRINT_NAME, allow

#: A year: the versioned URL changes whenever the file does.
IMMUTABLE = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class _Asset:
    body: bytes
    etag: str
    content_type: str


@functools.cache
def _asset(name: str, content_type: str) -> _Asset:
    body = (files("flask_tokenauth") / "static" / name).read_bytes()
    return _Asset(body, hashlib.sha256(body).hexdigest()[:16], content_type)


def _client_js() -> _Asset:
    return _asset("client.js", "text/javascript; charset=utf-8")


def _client_types() -> _Asset:
    return _asset("client.d.ts", "application/typescript; charset=utf-8")


def client_script_url(**url_for_kwargs: Any) -> str:
    """The URL of the browser client with its version in the query string,
    cached by browsers for a year.  For templates::

        <script type="module">
          import { createAuthClient } from "{{ client_script_url() }}";
        </script>

    Needs an app (or request) context; keyword arguments go to
    :func:`flask.url_for` (e.g. ``_external=True``).
    """
    return url_for(f"{BLUEPRINT_NAME}.client_js", v=_client_js().etag, **url_for_kwargs)


def _serve(asset: _Asset) -> Response:
    allow("GET", "HEAD")
    response = Response(asset.body, content_type=asset.content_type)
    response.set_etag(asset.etag)
    versioned = request.args.get("v") == asset.etag
    response.headers["Cache-Control"] = IMMUTABLE if versioned else "no-cache"
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.make_conditional(request)  # 304 on a matching If-None-Match
    return response


def client_js() -> Response:
    response = _serve(_client_js())
    # Deno and some bundlers find the types here.
    response.headers["X-TypeScript-Types"] = url_for(f"{BLUEPRINT_NAME}.client_types")
    return response


def client_types() -> Response:
    return _serve(_client_types())
