"""``GET /client.js`` and ``/client.d.ts``: the browser client as the
blueprint serves it (its behaviour is tested in Chromium, test_browser.py,
and in Node, tests/js/)."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flask_tokenauth import client_script_url

STATIC = files("flask_tokenauth") / "static"
JS = "text/javascript; charset=utf-8"
TS = "application/typescript; charset=utf-8"


@pytest.mark.parametrize(
    ("path", "name", "content_type"),
    [
        ("/api/auth/client.js", "client.js", JS),
        ("/api/auth/client.d.ts", "client.d.ts", TS),
    ],
)
def test_served_with_type_etag_and_revalidation(
    client: FlaskClient, path: str, name: str, content_type: str
) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.data == (STATIC / name).read_bytes()
    assert response.headers["Content-Type"] == content_type
    # Revalidated on every use, so an upgrade is picked up at once ...
    assert response.headers["Cache-Control"] == "no-cache"
    assert "Pragma" not in response.headers
    # ... cheaply: an unchanged file is a 304 without a body.
    etag = response.headers["ETag"]
    again = client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.data == b""
    # Importable from a page on another origin; never sniffed as anything else.
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_script_points_at_its_types(client: FlaskClient) -> None:
    response = client.get("/api/auth/client.js")
    assert response.headers["X-TypeScript-Types"] == "/api/auth/client.d.ts"
    assert b"export function createAuthClient" in response.data


def test_versioned_url_is_cached_for_a_year(app: Flask, client: FlaskClient) -> None:
    with app.test_request_context():
        url = client_script_url()
    assert url.startswith("/api/auth/client.js?v=")
    response = client.get(url)
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    # A stale version in the URL is not cached as if it were this one.
    stale = client.get("/api/auth/client.js?v=0123456789abcdef")
    assert stale.headers["Cache-Control"] == "no-cache"


def test_versioned_url_follows_the_prefix(make_app: Any) -> None:
    app = make_app(url_prefix="/auth/v2")
    with app.test_request_context():
        url = client_script_url(_external=True)
    assert url.startswith("http://localhost/auth/v2/client.js?v=")
    assert app.test_client().get(url).status_code == 200


def test_head_and_wrong_methods(client: FlaskClient) -> None:
    head = client.head("/api/auth/client.js")
    assert head.status_code == 200
    assert head.data == b""
    posted = client.post("/api/auth/client.js")
    assert posted.status_code == 405
    assert posted.json == {"error": "Method not allowed", "code": "METHOD_NOT_ALLOWED"}


@pytest.mark.requirement("ASVS-5.0-14.3.2")
def test_token_responses_stay_uncached(client: FlaskClient) -> None:
    """The blueprint's no-store default still covers everything else."""
    response = client.post("/api/auth/refresh")
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
