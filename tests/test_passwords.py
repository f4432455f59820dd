"""Passwords: bcrypt without truncation, other implementations' hashes,
rehash on cost change, and a login that does not reveal unknown emails."""

from __future__ import annotations

from typing import Any

import bcrypt
import pytest
from sqlalchemy import Engine, text

from flask_tokenauth import _passwords
from flask_tokenauth._passwords import (
    PREHASH_PREFIX,
    hash_password,
    hash_rounds,
    make_dummy_hash,
    verify_password,
)

from .conftest import PASSWORD, Auth


@pytest.mark.parametrize(
    "password",
    [
        "a" * 72,  # the last length plain bcrypt reads whole
        "a" * 73,  # 73 bytes
        "€" * 25,  # 25 characters, 75 bytes
        "пароль" * 11,  # 66 Cyrillic characters, 132 bytes
        "密码" * 32,  # 64 CJK characters, 192 bytes
        "🔐" * 64,  # 64 emoji, 256 bytes
    ],
)
def test_every_character_counts(password: str) -> None:
    stored = hash_password(password, 4)
    assert verify_password(password, stored)
    assert not verify_password(password[:-1], stored)
    assert not verify_password(password + "x", stored)
    if len(password.encode()) > 72:
        assert stored.startswith(PREHASH_PREFIX)
    else:
        assert stored.startswith("$2b$04$")


def test_shared_72_byte_prefix_does_not_match() -> None:
    prefix = "p" * 72
    stored = hash_password(prefix + "first", 4)
    assert verify_password(prefix + "first", stored)
    assert not verify_password(prefix + "second", stored)
    assert not verify_password(prefix, stored)


def test_prehash_is_keyed_by_the_salt() -> None:
    one, two = hash_password("x" * 100, 4), hash_password("x" * 100, 4)
    assert one != two  # different salts, different hashes
    assert one.startswith(PREHASH_PREFIX) and two.startswith(PREHASH_PREFIX)


@pytest.mark.parametrize("variant", ["$2a$", "$2b$", "$2y$"])
def test_other_implementations_hashes_verify(variant: str) -> None:
    stored = bcrypt.hashpw(b"tutorial password", bcrypt.gensalt(4)).decode()
    stored = variant + stored[4:]
    assert verify_password("tutorial password", stored)
    assert not verify_password("tutorial passworD", stored)


def test_long_password_never_matches_a_plain_hash_of_its_prefix() -> None:
    # What bcrypt 4 (or Node's bcryptjs) would have stored after truncation.
    stored = bcrypt.hashpw(b"z" * 72, bcrypt.gensalt(4)).decode()
    assert not verify_password("z" * 80, stored)


@pytest.mark.parametrize(
    "stored", ["", "plaintext", "$2b$12$dummyHashForTimingAttackPrevention", "$2b$"]
)
def test_malformed_hash_is_a_mismatch(stored: str) -> None:
    assert verify_password("whatever1", stored) is False


def test_dummy_hash_is_a_real_hash_at_the_configured_cost() -> None:
    dummy = make_dummy_hash(5)
    assert hash_rounds(dummy) == 5
    assert bcrypt.checkpw(b"anything", dummy.encode()) is False  # no ValueError


def test_rehash_on_login_when_rounds_change(make_app: Any, engine: Engine) -> None:
    Auth(make_app().test_client()).register()
    with engine.connect() as conn:
        before = conn.execute(text("SELECT password_hash FROM users")).scalar_one()
    assert hash_rounds(before) == 4
    stronger = Auth(make_app(TOKENAUTH_BCRYPT_ROUNDS=5).test_client())
    assert stronger.login().status_code == 200
    with engine.connect() as conn:
        after = conn.execute(text("SELECT password_hash FROM users")).scalar_one()
    assert hash_rounds(after) == 5
    assert verify_password(PASSWORD, after)
    assert stronger.login().status_code == 200


def test_node_hash_logs_in(auth: Auth, engine: Engine) -> None:
    """A user migrated from the tutorial's Node app ($2a$ from bcryptjs)."""
    node_hash = (
        "$2a$" + bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()[4:]
    )
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO users (email, password_hash) VALUES (:e, :h)"),
            {"e": "node@example.com", "h": node_hash},
        )
    assert auth.login("node@example.com").status_code == 200


def test_long_and_multibyte_passwords_through_the_api(auth: Auth) -> None:
    for i, password in enumerate(["a" * 73, "€" * 25, "é" * 64]):
        email = f"user{i}@example.com"
        assert auth.register(email, password).status_code == 201
        assert auth.login(email, password).status_code == 200
        assert auth.login(email, password[:-1]).status_code == 401


def test_unknown_email_costs_the_same_and_answers_the_same(
    auth: Auth, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth.register()
    costs: list[int | None] = []
    real_checkpw = bcrypt.checkpw

    def spy(password: bytes, hashed: bytes) -> bool:
        costs.append(hash_rounds(hashed.decode()))
        return real_checkpw(password, hashed)

    monkeypatch.setattr(_passwords.bcrypt, "checkpw", spy)
    wrong_password = auth.login("user@example.com", "wrong password")
    unknown_email = auth.login("nobody@example.com", "wrong password")
    assert costs == [4, 4]  # one bcrypt check each, at the configured cost
    assert wrong_password.status_code == unknown_email.status_code == 401
    assert wrong_password.get_data() == unknown_email.get_data()
    assert unknown_email.get_json() == {
        "error": "Invalid credentials",
        "code": "INVALID_CREDENTIALS",
    }
