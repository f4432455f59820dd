"""``TOKENAUTH_HEADER_TYPES``: the schemes of ``Authorization: <type> <token>``
an app accepts (as Flask-JWT-Extended's ``JWT_HEADER_TYPE``), read once at
start-up; ``WWW-Authenticate`` names the first."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from flask_tokenauth import (
    ConfigurationError,
    TokenAuthClient,
    auth_headers,
    current_user,
    login_required,
)

from .conftest import Auth

#: (TOKENAUTH_HEADER_TYPES, {header template: accepted?}, challenge scheme)
CASES: list[tuple[Any, dict[str, bool], str]] = [
    (
        ("Bearer",),  # the default
        {"Bearer {}": True, "bearer {}": True, "Token {}": False, "{}": False},
        "Bearer",
    ),
    (
        ("Token",),
        {"Token {}": True, "TOKEN {}": True, "Bearer {}": False, "{}": False},
        "Token",
    ),
    (
        "Token, Bearer",  # one string, as an environment variable gives it
        {"Token {}": True, "Bearer {}": True, "JWT {}": False},
        "Token",
    ),
    (
        ["JWT", ""],  # "" accepts a bare token
        {"JWT {}": True, "{}": True, "Bearer {}": False},
        "JWT",
    ),
    (("",), {"{}": True, "Bearer {}": False}, "Bearer"),
]


def protected_app(make_app: Callable[..., Flask], header_types: Any) -> Flask:
    config = {} if header_types == ("Bearer",) else {"HEADER_TYPES": header_types}
    app = make_app(**{f"TOKENAUTH_{k}": v for k, v in config.items()})

    @app.get("/me")
    @login_required
    def me() -> dict[str, Any]:
        return {"id": current_user.id}

    @app.get("/maybe")
    @login_required(optional=True)
    def maybe() -> dict[str, Any]:
        return {"authenticated": current_user.is_authenticated}

    return app


@pytest.mark.parametrize(("header_types", "headers", "scheme"), CASES)
def test_the_configured_types_and_only_they_are_accepted(
    make_app: Callable[..., Flask],
    header_types: Any,
    headers: dict[str, bool],
    scheme: str,
) -> None:
    app = protected_app(make_app, header_types)
    client = app.test_client()
    token = Auth(client).register().get_json()["accessToken"]
    for template, accepted in headers.items():
        sent = {"Authorization": template.format(token)}
        response = client.get("/me", headers=sent)
        if accepted:
            assert response.status_code == 200, template
            optional = client.get("/maybe", headers=sent).get_json()
            assert optional == {"authenticated": True}, template
        else:
            # Another scheme is no token of ours: missing, and anonymous in
            # an optional view (as a Basic header for a proxy would be).
            assert response.status_code == 401, template
            assert response.get_json()["code"] == "TOKEN_MISSING", template
            optional = client.get("/maybe", headers=sent).get_json()
            assert optional == {"authenticated": False}, template
    response = client.get("/me")
    assert response.headers["WWW-Authenticate"] == f'{scheme} realm="api"'
    # A type of ours with something that is not one token is a bad token.
    for template in [t for t, accepted in headers.items() if accepted and t != "{}"]:
        for value in ("two words", ""):
            response = client.get(
                "/me", headers={"Authorization": template.format(value)}
            )
            assert response.get_json()["code"] == "TOKEN_INVALID", template
            challenge = response.headers["WWW-Authenticate"]
            assert challenge.startswith(f'{scheme} realm="api", error='), template


@pytest.mark.parametrize("header_types", [("Token",), ("",)])
def test_the_test_helpers_send_the_first_type(
    make_app: Callable[..., Flask], header_types: tuple[str, ...]
) -> None:
    app = protected_app(make_app, header_types)
    user_id = Auth(app.test_client()).register().get_json()["user"]["id"]
    with app.app_context():
        headers = auth_headers(user_id)
    assert headers["Authorization"].startswith(f"{header_types[0]} ".lstrip() + "ey")
    assert app.test_client().get("/me", headers=headers).status_code == 200
    app.test_client_class = TokenAuthClient
    assert app.test_client(user=user_id).get("/me").get_json() == {"id": user_id}


@pytest.mark.parametrize(
    "value", [(), [], ("Bearer", "Bea rer"), ("Bearer:",), (1,), 7, None]
)
def test_a_bad_value_stops_the_app(make_app: Callable[..., Flask], value: Any) -> None:
    with pytest.raises(ConfigurationError, match="TOKENAUTH_HEADER_TYPES"):
        make_app(TOKENAUTH_HEADER_TYPES=value)
