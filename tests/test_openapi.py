"""The OpenAPI description: every route in it, valid, served where the
blueprint is mounted."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Blueprint, Flask
from openapi_spec_validator import validate

from flask_tokenauth import auth_bp
from flask_tokenauth.openapi import openapi_document, undescribed_endpoints
from flask_tokenauth.openapi._document import OPERATIONS

from .openapi_helpers import FULL_CONFIG, assert_conforms

pytestmark = pytest.mark.sqlite


@pytest.fixture
def full_app(make_app: Any) -> Flask:
    return make_app(**FULL_CONFIG)  # type: ignore[no-any-return]


def _endpoints(app: Flask) -> list[str]:
    return sorted(
        rule.endpoint.removeprefix("tokenauth.")
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("tokenauth.")
    )


def test_every_route_is_described(full_app: Flask) -> None:
    """Walks the URL map: a route added without an operation fails here."""
    assert len(_endpoints(full_app)) > 30
    assert undescribed_endpoints(full_app) == []


def test_every_declared_operation_is_a_route(full_app: Flask) -> None:
    assert sorted(OPERATIONS) == _endpoints(full_app)


def test_the_document_is_valid_openapi_3_1(full_app: Flask) -> None:
    document = full_app.test_client().get("/api/auth/openapi.json").get_json()
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_nested_and_renamed_mount(make_app: Any) -> None:
    """The paths are where the routes really are, the document at its own
    registration's prefix."""
    app = make_app(url_prefix="/v2/account")
    paths = app.test_client().get("/v2/account/openapi.json").get_json()["paths"]
    assert "/v2/account/login" in paths
    assert not any(path.startswith("/api/auth") for path in paths)

    nested = Flask(__name__)
    nested.config.update(app.config)
    parent = Blueprint("api", __name__, url_prefix="/api")
    parent.register_blueprint(auth_bp, url_prefix="/auth", name="accounts")
    nested.extensions.update(app.extensions)
    nested.register_blueprint(parent)
    with nested.app_context():
        document = openapi_document(nested, "api.accounts")
    assert "/api/auth/login" in document["paths"]
    validate(document)


@pytest.mark.parametrize("value", ["", None])
def test_off_switch(make_app: Any, value: Any) -> None:
    app = make_app(TOKENAUTH_OPENAPI_PATH=value)
    response = app.test_client().get("/api/auth/openapi.json")
    assert response.status_code == 404
    assert "openapi" not in _endpoints(app)


def test_config_path(make_app: Any) -> None:
    app = make_app(TOKENAUTH_OPENAPI_PATH="/docs/api.json")
    assert app.test_client().get("/api/auth/docs/api.json").status_code == 200


def test_login_answers_conform(full_app: Flask) -> None:
    """The helper the operation tests use: a documented answer passes, an
    undocumented status or shape fails."""
    client = full_app.test_client()
    document = client.get("/api/auth/openapi.json").get_json()
    body = {"email": "conform@example.com", "password": "correct horse battery"}
    assert_conforms(document, client.post("/api/auth/register", json=body))
    assert_conforms(document, client.post("/api/auth/login", json=body))
    assert_conforms(document, client.post("/api/auth/login", json={"email": 1}))
    wrong = client.post("/api/auth/login", json={**body, "password": "nope nope nope"})
    assert_conforms(document, wrong)
    del document["paths"]["/api/auth/login"]["post"]["responses"]["401"]
    with pytest.raises(AssertionError, match="not documented"):
        assert_conforms(document, wrong)
