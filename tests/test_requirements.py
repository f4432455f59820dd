"""Requirements of the conformance report that no other test proved on its
own: the HSTS policy's strength, no default accounts, no token in a URL, and
a password reset that leaves the second factor in place.  (Every other
requirement is proven where its feature is tested; see CONFORMANCE.md.)"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, text

from .assurance_helpers import claims_of, give_totp
from .conftest import Auth, bearer

NEW_PASSWORD = "a brand new passphrase"


@pytest.mark.requirement("ASVS-5.0-3.4.1")
@pytest.mark.parametrize("path", ["register", "login", "refresh", "logout"])
def test_hsts_is_a_year_with_subdomains_by_default(auth: Auth, path: str) -> None:
    auth.register()
    response = auth.client.post(f"/api/auth/{path}", json={})
    directives = {
        d.strip().split("=")[0].lower(): d.strip().partition("=")[2]
        for d in response.headers["Strict-Transport-Security"].split(";")
    }
    assert int(directives["max-age"]) >= 365 * 86400
    assert "includesubdomains" in directives


@pytest.mark.requirement("ASVS-5.0-6.3.2")
@pytest.mark.parametrize("login", ["admin", "root", "sa", "admin@example.com"])
def test_a_new_install_has_no_accounts(auth: Auth, engine: Engine, login: str) -> None:
    with engine.connect() as conn:
        users = conn.execute(text("SELECT count(*) FROM tokenauth_users")).scalar()
    assert users == 0
    for password in ("admin", "password", login, ""):
        assert auth.login(login, password).status_code in (400, 401)


@pytest.mark.requirement("ASVS-5.0-14.2.1")
@pytest.mark.parametrize("name", ["access_token", "token", "jwt"])
def test_an_access_token_in_the_query_string_is_not_read(auth: Auth, name: str) -> None:
    token = auth.register().get_json()["accessToken"]
    assert (
        auth.client.get("/api/auth/sessions", headers=bearer(token)).status_code == 200
    )
    response = auth.client.get(f"/api/auth/sessions?{name}={token}")
    assert response.status_code == 401
    assert response.get_json()["code"] == "TOKEN_MISSING"


@pytest.mark.requirement("ASVS-5.0-14.2.1")
def test_mailed_links_carry_their_token_in_the_fragment(make_app: Any) -> None:
    """The fragment never reaches a server, a log or a Referer."""
    settings = make_app().extensions["tokenauth"].settings
    urls = [
        settings.verify_email_url,
        settings.reset_password_url,
        settings.change_email_confirm_url,
        settings.change_email_cancel_url,
        settings.email_login_url,
    ]
    assert all("#" in url and url.index("#") < url.index("{token}") for url in urls)


@pytest.mark.requirement("ASVS-5.0-6.4.3")
def test_a_password_reset_leaves_the_second_factor_in_place(
    make_app: Any, engine: Engine, mail_config: dict[str, Any]
) -> None:
    app = make_app(**mail_config, TOKENAUTH_PASSWORD_RESET_ENABLED=True)
    auth = Auth(app.test_client())
    registered = auth.register()
    give_totp(engine, claims_of(registered.get_json()["accessToken"])["sub"])
    email = registered.get_json()["user"]["email"]
    link = app.test_cli_runner().invoke(
        args=["tokenauth", "users", "reset-link", email]
    )
    assert link.exit_code == 0, link.output
    token = link.stdout.strip().split("#token=")[1]
    reset = auth.client.post(
        "/api/auth/reset-password", json={"token": token, "password": NEW_PASSWORD}
    )
    assert reset.status_code == 200
    assert "accessToken" not in reset.get_json()  # no session from the link
    login = auth.login(email, NEW_PASSWORD)
    assert login.status_code == 200
    assert login.get_json()["mfaRequired"] is True
    assert claims_of(login.get_json()["accessToken"])["mfa_state"] == "pending"
