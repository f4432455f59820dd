"""What a new password must be: long enough in characters a person sees, and
not on the shipped list of common passwords (NIST SP 800-63B-4 3.1.1.2,
OWASP ASVS 5.0 6.2.4), at registration, password change and create-user."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, text

from flask_tokenauth import _blocklist
from flask_tokenauth._config import Settings
from flask_tokenauth._validation import visible_password
from flask_tokenauth.errors import ConfigurationError

from .conftest import PASSWORD, Auth, base_config, bearer
from .test_validation import assert_error, count_rows

ZWSP = "\u200b"

#: The examples of the attack review, and variants that must not slip by.
COMMON = [
    "password",
    "12345678",
    "qwertyuiop",
    "11111111",
    "PassWord1",  # case does not matter: "password1" is on the list
    "QWERTYUIOP",
    " password ",  # edge whitespace is not part of what a person sees
    f"pass{ZWSP}word",  # nor is a zero-width space
    "\uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44",  # full-width: NFKC
]

#: Too short once the invisible characters are left out.
INVISIBLE = [
    ZWSP * 8,  # the attack review's case
    ZWSP * 64,
    "\u200d\u200c\u2060\ufeff\u00ad\u200e\u202e\u3164",  # joiners, bidi, filler
    "\ufe0f" * 8,  # variation selectors
    "\t\n\r\x1b" * 2,  # controls
    " " * 12,  # nothing but spaces
    "\u3000" * 10,  # ideographic spaces (NFKC: spaces)
    f"abc{ZWSP * 10}",  # 3 visible characters
]

#: Fine: long enough, not common, whatever their script or spacing.
STRONG = [
    PASSWORD,  # "correct horse battery"
    "tram orbit velvet 42",
    "ж" * 8,
    "密码很长很难猜到的",
    f"tr{ZWSP}amorbit",  # 8 visible characters, an invisible one between
]


def test_the_list_is_shipped_and_big_enough() -> None:
    words = _blocklist.common_passwords()
    # ASVS 6.2.4 asks for the top 3,000; what our minimum length lets through.
    assert len([w for w in words if len(w) >= 8]) >= 3000
    assert {"password", "12345678", "qwertyuiop", "11111111"} <= words
    assert _blocklist.common_passwords() is words  # read once per process


def test_the_list_is_read_on_first_use_not_at_import() -> None:
    import subprocess
    import sys

    code = (
        "import flask_tokenauth, flask_tokenauth._validation as v,"
        " flask_tokenauth._blocklist as b; print(b._passwords is None)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "True"


@pytest.mark.parametrize("password", COMMON)
def test_register_refuses_common_passwords(
    auth: Auth, engine: Engine, password: str
) -> None:
    assert_error(auth.register(password=password), 400, "PASSWORD_TOO_COMMON")
    assert count_rows(engine) == (0, 0)


@pytest.mark.parametrize("password", INVISIBLE)
def test_invisible_characters_do_not_count(
    auth: Auth, engine: Engine, password: str
) -> None:
    assert_error(auth.register(password=password), 400, "INVALID_PASSWORD")
    assert count_rows(engine) == (0, 0)


@pytest.mark.parametrize("password", STRONG)
def test_strong_passwords_pass_and_are_kept_as_sent(auth: Auth, password: str) -> None:
    """What is hashed is the password as typed: the visible form is only
    for checking it."""
    assert auth.register(password=password).status_code == 201
    assert auth.login(password=password).status_code == 200
    if visible_password(password) != password:
        assert auth.login(password=visible_password(password)).status_code == 401


@pytest.mark.parametrize(
    ("new", "code"),
    [
        ("password", "PASSWORD_TOO_COMMON"),
        ("PassWord1", "PASSWORD_TOO_COMMON"),
        ("qwertyuiop", "PASSWORD_TOO_COMMON"),
        (ZWSP * 8, "INVALID_PASSWORD"),
    ],
)
def test_password_change_refuses_them_too(
    auth: Auth, engine: Engine, new: str, code: str
) -> None:
    token = auth.register().get_json()["accessToken"]
    with engine.connect() as conn:
        before = conn.execute(
            text("SELECT password_hash FROM tokenauth_users")
        ).scalar_one()
    response = auth.client.post(
        "/api/auth/password",
        json={"currentPassword": PASSWORD, "newPassword": new},
        headers=bearer(token),
    )
    assert_error(response, 400, code)
    with engine.connect() as conn:
        after = conn.execute(
            text("SELECT password_hash FROM tokenauth_users")
        ).scalar_one()
    assert after == before
    assert auth.login().status_code == 200


def test_password_change_to_a_strong_one(auth: Auth) -> None:
    token = auth.register().get_json()["accessToken"]
    response = auth.client.post(
        "/api/auth/password",
        json={"currentPassword": PASSWORD, "newPassword": "tram orbit velvet 42"},
        headers=bearer(token),
    )
    assert response.status_code == 200
    assert auth.login(password="tram orbit velvet 42").status_code == 200


@pytest.mark.parametrize(
    ("password", "message"),
    [("qwertyuiop", "too common"), (ZWSP * 8, "at least 8 characters")],
)
def test_create_user_refuses_them(app: Flask, password: str, message: str) -> None:
    result = app.test_cli_runner().invoke(
        args=["tokenauth", "create-user", "a@example.com", "--password", password]
    )
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_login_is_not_checked_against_the_list(make_app: Any, engine: Engine) -> None:
    """A user whose password predates the list can still log in (and is
    then free to change it)."""
    Auth(make_app(TOKENAUTH_PASSWORD_BLOCKLIST=False).test_client()).register(
        password="password"
    )
    assert Auth(make_app().test_client()).login(password="password").status_code == 200


@pytest.mark.parametrize("value", [False, "false", "0", "off"])
def test_the_list_can_be_turned_off(make_app: Any, value: Any) -> None:
    auth = Auth(make_app(TOKENAUTH_PASSWORD_BLOCKLIST=value).test_client())
    assert auth.register(password="password").status_code == 201
    # The length rule stays.
    assert_error(auth.register("b@example.com", ZWSP * 8), 400, "INVALID_PASSWORD")


def test_setting_is_validated_at_start_up() -> None:
    with pytest.raises(ConfigurationError, match="TOKENAUTH_PASSWORD_BLOCKLIST"):
        Settings.from_mapping(base_config(TOKENAUTH_PASSWORD_BLOCKLIST="maybe"))


def test_a_missing_list_fails_at_start_up(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setattr(
        "flask_tokenauth._parsers.blocklist_file", lambda: tmp_path / "missing.gz"
    )
    with pytest.raises(ConfigurationError, match="TOKENAUTH_PASSWORD_BLOCKLIST"):
        Settings.from_mapping(base_config())
    assert Settings.from_mapping(base_config(TOKENAUTH_PASSWORD_BLOCKLIST=False))


@pytest.mark.parametrize(
    ("password", "visible"),
    [
        (f"{ZWSP}correct horse{ZWSP}", "correct horse"),
        ("  two  spaces  ", "two  spaces"),  # inner spaces count
        ("e\u0301" * 4, "\u00e9" * 4),  # composed by NFKC
        ("\uff21\uff22", "AB"),
        ("\U0001f468\u200d\U0001f469", "\U0001f468\U0001f469"),  # ZWJ dropped
    ],
)
def test_visible_password(password: str, visible: str) -> None:
    assert visible_password(password) == visible
