"""What a new password must be: long enough in characters a person sees, not
on the shipped list of common passwords, and free of the words of its
context (NIST SP 800-63B-4 3.1.1.2, OWASP ASVS 5.0 6.2.4), at registration,
password change and create-user."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, text

from flask_tokenauth import _blocklist
from flask_tokenauth._config import Settings
from flask_tokenauth._password_text import normalize_password, visible_characters
from flask_tokenauth.errors import ConfigurationError

from .conftest import PASSWORD, Auth, base_config, bearer
from .test_validation import assert_error, count_rows

ZWSP = "\u200b"
BRAILLE_BLANK = "\u2800"
ARABIC_INDIC = "\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668"  # 12345678
DEVANAGARI = "\u0967\u0968\u0969\u096a\u096b\u096c\u096d\u096e"  # 12345678

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
    f"password{BRAILLE_BLANK}",  # a braille blank is no character either
    "pass word",  # nor a space between
    "pass\u3164word",  # nor a Hangul filler
    ARABIC_INDIC,  # 12345678 in other digits
    DEVANAGARI,
    "\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18",  # full-width digits
    "passw0rd!",  # not in the former list of 20,000
    "Password2024!",  # a listed password and a short tail of digits and symbols
    "qwerty123!",
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
    BRAILLE_BLANK * 8,  # the attack review's case
    "\u115f\u1160\u3164\uffa0" * 2,  # Hangul fillers
    "\u00a0\u2007\u202f\u205f" * 3,  # no-break and other spaces
    "\u2028\u2029\x85" * 3,  # line and paragraph separators
    "ab cd ef g",  # 7 visible characters: spaces do not count
]

#: Fine: long enough, not common, whatever their script or spacing.
STRONG = [
    PASSWORD,  # "correct horse battery"
    "tram orbit velvet 42",
    "ж" * 8,
    "密码很长很难猜到的",
    f"tr{ZWSP}amorbit",  # 8 visible characters, an invisible one between
    "\u0661\u0669\u0664\u0667 tram orbit",  # digits of any script are fine
    "dragon!!!!!",  # a tail longer than what counts as a variant
]


@pytest.mark.requirement("ASVS-5.0-6.2.4", "ASVS-5.0-6.2.12")
def test_the_list_is_shipped_and_big_enough() -> None:
    shipped = _blocklist.shipped_passwords()
    # ASVS 6.2.4 asks for the top 3,000; issue 16 for 100,000, all of a
    # length our minimum lets through, all already normalized.
    assert len(set(shipped)) >= 100_000
    assert min(len(w) for w in shipped) >= 8
    assert all(normalize_password(w) == w for w in shipped)
    words = _blocklist.common_passwords()
    assert len(words) == len(set(shipped))  # no two entries share a digest
    for word in ("password", "12345678", "qwertyuiop", "11111111", "passw0rd"):
        assert word in words
    assert _blocklist.common_passwords() is words  # read once per process


def test_the_compact_set_answers_as_a_set() -> None:
    """The digests answer ``in`` as the strings would, at both ends of the
    sorted array and between its entries."""
    sample = [f"entry-{i}" for i in range(1_000)]
    words = _blocklist.PasswordSet(sample)
    assert len(words) == 1_000
    assert all(word in words for word in sample)
    assert not any(f"other-{i}" in words for i in range(1_000))
    assert "" not in words and 12345678 not in words
    assert "x" not in _blocklist.PasswordSet([])


def test_the_list_is_read_once_for_many_apps(make_app: Any) -> None:
    """A test suite creates many apps: the list is per process, not per app."""
    first = Auth(make_app().test_client())
    assert_error(first.register(password="passw0rd!"), 400, "PASSWORD_TOO_COMMON")
    words = _blocklist.common_passwords()
    second = Auth(make_app().test_client())
    assert_error(second.register(password="passw0rd!"), 400, "PASSWORD_TOO_COMMON")
    assert _blocklist.common_passwords() is words


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
@pytest.mark.requirement("ASVS-5.0-6.2.4", "ASVS-5.0-6.2.12", "NIST-800-63B-4-3.1.1.2")
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
@pytest.mark.requirement("ASVS-5.0-6.2.5", "NIST-800-63B-4-3.1.1.1")
def test_strong_passwords_pass_and_are_kept_as_sent(auth: Auth, password: str) -> None:
    """What is hashed is the password as typed: the visible form is only
    for checking it."""
    assert auth.register(password=password).status_code == 201
    assert auth.login(password=password).status_code == 200
    if visible_characters(password) != password:
        assert auth.login(password=visible_characters(password)).status_code == 401


@pytest.mark.parametrize(
    ("new", "code"),
    [
        ("password", "PASSWORD_TOO_COMMON"),
        ("PassWord1", "PASSWORD_TOO_COMMON"),
        ("qwertyuiop", "PASSWORD_TOO_COMMON"),
        (ZWSP * 8, "INVALID_PASSWORD"),
        (BRAILLE_BLANK * 8, "INVALID_PASSWORD"),
        (ARABIC_INDIC, "PASSWORD_TOO_COMMON"),
        ("user-secret-2024", "PASSWORD_HAS_CONTEXT_WORD"),  # user@example.com
    ],
)
@pytest.mark.requirement("ASVS-5.0-6.2.4", "ASVS-5.0-6.2.12", "NIST-800-63B-4-3.1.1.2")
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


#: (login, TOKENAUTH_SERVICE_NAME, password): the password contains a word of
#: its context (NIST SP 800-63B-4 3.1.1.2), whatever the case, script or
#: punctuation.
CONTEXT = [
    ("jsmith@example.com", None, "JSmith-2024-tram"),
    ("j.smith@example.com", None, "tram j smith orbit"),
    ("bob@example.com", None, "bob@example.com tram"),  # the whole address
    ("ana@example.com", "Acme Shop", "acme_shop tram orbit"),
    ("ana@example.com", ["Tramway", "acme.example"], "ACME.example rules"),
    ("ana@example.com", "Acme", "\uff21\uff23\uff2d\uff25 tram orbit"),
]

#: Words too short to look for inside a password, and no service name.
NOT_CONTEXT = [
    ("al@example.com", None, "always tram orbit"),
    ("ana@example.com", None, "banana tram orbit"),
    ("ana@example.com", "Acme", "tram orbit velvet"),
]


@pytest.mark.parametrize(("login", "service", "password"), CONTEXT)
@pytest.mark.requirement("ASVS-5.0-6.2.11", "NIST-800-63B-4-3.1.1.2")
def test_register_refuses_context_words(
    make_app: Any, engine: Engine, login: str, service: Any, password: str
) -> None:
    auth = Auth(make_app(TOKENAUTH_SERVICE_NAME=service).test_client())
    response = auth.register(login, password)
    assert_error(response, 400, "PASSWORD_HAS_CONTEXT_WORD")
    assert count_rows(engine) == (0, 0)


@pytest.mark.parametrize(("login", "service", "password"), NOT_CONTEXT)
def test_context_words_refuse_no_more(
    make_app: Any, login: str, service: Any, password: str
) -> None:
    auth = Auth(make_app(TOKENAUTH_SERVICE_NAME=service).test_client())
    assert auth.register(login, password).status_code == 201


def test_password_change_checks_the_login_only_after_the_current_password(
    auth: Auth,
) -> None:
    """A wrong current password answers first: the refusal never tells the
    holder of a stolen access token whether a guess is part of the login."""
    token = auth.register("jsmith@example.com").get_json()["accessToken"]
    new = {"newPassword": "jsmith tram orbit"}
    wrong = auth.client.post(
        "/api/auth/password",
        json={"currentPassword": "not it at all", **new},
        headers=bearer(token),
    )
    assert_error(wrong, 403, "WRONG_PASSWORD")
    right = auth.client.post(
        "/api/auth/password",
        json={"currentPassword": PASSWORD, **new},
        headers=bearer(token),
    )
    assert_error(right, 400, "PASSWORD_HAS_CONTEXT_WORD")


def test_create_user_refuses_context_words(app: Flask) -> None:
    result = app.test_cli_runner().invoke(
        args=[
            "tokenauth",
            "create-user",
            "jsmith@example.com",
            "--password",
            "JSmith tram orbit",
        ]
    )
    assert result.exit_code == 2, result.output
    assert "must not contain your login" in result.output


@pytest.mark.parametrize("value", [42, ["Acme", 7], "!!!", [""]])
def test_service_name_is_validated_at_start_up(value: Any) -> None:
    with pytest.raises(ConfigurationError, match="TOKENAUTH_SERVICE_NAME"):
        Settings.from_mapping(base_config(TOKENAUTH_SERVICE_NAME=value))


@pytest.mark.requirement("ASVS-5.0-6.2.2")
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
    ("password", "normalized"),
    [
        (f"{ZWSP}correct horse{ZWSP}", "correcthorse"),
        ("  Two  Spaces  ", "twospaces"),
        ("e\u0301" * 4, "\u00e9" * 4),  # composed by NFKC
        ("\uff21\uff22", "ab"),
        ("\U0001f468\u200d\U0001f469", "\U0001f468\U0001f469"),  # ZWJ dropped
        (f"PASS{BRAILLE_BLANK}WORD", "password"),
        (ARABIC_INDIC, "12345678"),
        (DEVANAGARI, "12345678"),
        ("Stra\u00dfe", "strasse"),  # case folding, not lower()
    ],
)
def test_normalize_password(password: str, normalized: str) -> None:
    assert normalize_password(password) == normalized
