"""Passwords: bcrypt without truncation, other implementations' hashes,
rehash on cost change, and a login that does not reveal unknown emails."""

from __future__ import annotations

import threading
from typing import Any

import bcrypt
import pytest
from sqlalchemy import Engine, text

from flask_tokenauth import _passwords, auth_headers
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
@pytest.mark.requirement("ASVS-5.0-6.2.8", "NIST-800-63B-4-3.1.1.2")
def test_every_character_counts(password: str) -> None:
    stored = hash_password(password, 4)
    assert verify_password(password, stored, rounds=4)
    assert not verify_password(password[:-1], stored, rounds=4)
    assert not verify_password(password + "x", stored, rounds=4)
    if len(password.encode()) > 72:
        assert stored.startswith(PREHASH_PREFIX)
    else:
        assert stored.startswith("$2b$04$")


@pytest.mark.requirement("ASVS-5.0-6.2.8", "NIST-800-63B-4-3.1.1.2")
def test_shared_72_byte_prefix_does_not_match() -> None:
    prefix = "p" * 72
    stored = hash_password(prefix + "first", 4)
    assert verify_password(prefix + "first", stored, rounds=4)
    assert not verify_password(prefix + "second", stored, rounds=4)
    assert not verify_password(prefix, stored, rounds=4)


def test_prehash_is_keyed_by_the_salt() -> None:
    one, two = hash_password("x" * 100, 4), hash_password("x" * 100, 4)
    assert one != two  # different salts, different hashes
    assert one.startswith(PREHASH_PREFIX) and two.startswith(PREHASH_PREFIX)


@pytest.mark.parametrize("variant", ["$2a$", "$2b$", "$2y$"])
def test_other_implementations_hashes_verify(variant: str) -> None:
    stored = bcrypt.hashpw(b"tutorial password", bcrypt.gensalt(4)).decode()
    stored = variant + stored[4:]
    assert verify_password("tutorial password", stored, rounds=4)
    assert not verify_password("tutorial passworD", stored, rounds=4)


def test_long_password_never_matches_a_plain_hash_of_its_prefix() -> None:
    # What bcrypt 4 (or Node's bcryptjs) would have stored after truncation.
    stored = bcrypt.hashpw(b"z" * 72, bcrypt.gensalt(4)).decode()
    assert not verify_password("z" * 80, stored, rounds=4)


@pytest.mark.parametrize(
    "stored", ["", "plaintext", "$2b$12$dummyHashForTimingAttackPrevention", "$2b$"]
)
def test_malformed_hash_is_a_mismatch(stored: str) -> None:
    assert verify_password("whatever1", stored, rounds=4) is False


@pytest.mark.requirement("ASVS-5.0-11.4.2")
def test_dummy_hash_is_a_real_hash_at_the_configured_cost() -> None:
    dummy = make_dummy_hash(5)
    assert hash_rounds(dummy) == 5
    assert bcrypt.checkpw(b"anything", dummy.encode()) is False  # no ValueError


@pytest.mark.requirement("ASVS-5.0-11.4.2")
def test_rehash_on_login_when_rounds_change(make_app: Any, engine: Engine) -> None:
    Auth(make_app().test_client()).register()
    with engine.connect() as conn:
        before = conn.execute(
            text("SELECT password_hash FROM tokenauth_users")
        ).scalar_one()
    assert hash_rounds(before) == 4
    stronger = Auth(make_app(TOKENAUTH_BCRYPT_ROUNDS=5).test_client())
    assert stronger.login().status_code == 200
    with engine.connect() as conn:
        after = conn.execute(
            text("SELECT password_hash FROM tokenauth_users")
        ).scalar_one()
    assert hash_rounds(after) == 5
    assert verify_password(PASSWORD, after, rounds=5)
    assert stronger.login().status_code == 200


def test_node_hash_logs_in(auth: Auth, engine: Engine) -> None:
    """A user migrated from the tutorial's Node app ($2a$ from bcryptjs)."""
    node_hash = (
        "$2a$" + bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()[4:]
    )
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO tokenauth_users (email, password_hash) VALUES (:e, :h)"),
            {"e": "node@example.com", "h": node_hash},
        )
    assert auth.login("node@example.com").status_code == 200


@pytest.mark.requirement("ASVS-5.0-6.2.8", "ASVS-5.0-6.2.9")
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


# -- every check costs the work of one at the configured cost ------------------

CONFIGURED = 6


@pytest.fixture
def bcrypt_work(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The cost of every hash bcrypt checks from now on (timing-free: the
    work of a check at cost ``c`` is ``2**c``)."""
    costs: list[int] = []
    real_checkpw = bcrypt.checkpw

    def spy(password: bytes, hashed: bytes) -> bool:
        matched = real_checkpw(password, hashed)  # raises, no work, if malformed
        cost = hash_rounds(hashed.decode())
        assert cost is not None
        costs.append(cost)
        return matched

    monkeypatch.setattr(_passwords.bcrypt, "checkpw", spy)
    return costs


def work(costs: list[int]) -> int:
    return sum(2**cost for cost in costs)


def insert_user(engine: Engine, email: str, password_hash: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO tokenauth_users (email, password_hash) VALUES (:e, :h)"),
            {"e": email, "h": password_hash},
        )


def legacy_prehash(password: str, rounds: int) -> str:
    """A ``$bcrypt-sha256$`` hash of a long password at ``rounds``."""
    return hash_password(password, rounds)


#: How each stored hash is made, and the bcrypt work a login against it must
#: cost: that of one check at the configured cost, unless the hash costs more.
STORED = {
    "legacy cost 4": (lambda: hash_password(PASSWORD, 4), 2**CONFIGURED),
    "legacy cost 5": (lambda: hash_password(PASSWORD, 5), 2**CONFIGURED),
    "legacy $2a$ cost 4": (
        lambda: "$2a$" + hash_password(PASSWORD, 4)[4:],
        2**CONFIGURED,
    ),
    "legacy long password": (
        lambda: legacy_prehash(PASSWORD * 4, 4),
        2**CONFIGURED,
    ),
    "current": (lambda: hash_password(PASSWORD, CONFIGURED), 2**CONFIGURED),
    "disabled account (no hash)": (lambda: "!", 2**CONFIGURED),
    "malformed cost": (lambda: "$2b$03$" + "a" * 53, 2**CONFIGURED),
    "higher cost, not padded": (
        lambda: hash_password(PASSWORD, CONFIGURED + 1),
        2 ** (CONFIGURED + 1),
    ),
}


@pytest.mark.parametrize("case", list(STORED))
def test_a_wrong_password_costs_the_configured_work(
    make_app: Any, engine: Engine, bcrypt_work: list[int], case: str
) -> None:
    make_hash, expected = STORED[case]
    insert_user(engine, "old@example.com", make_hash())
    auth = Auth(make_app(TOKENAUTH_BCRYPT_ROUNDS=CONFIGURED).test_client())
    bcrypt_work.clear()
    assert auth.login("old@example.com", "wrong password").status_code == 401
    assert work(bcrypt_work) == expected, bcrypt_work


def test_an_unknown_email_costs_the_same(make_app: Any, bcrypt_work: list[int]) -> None:
    auth = Auth(make_app(TOKENAUTH_BCRYPT_ROUNDS=CONFIGURED).test_client())
    assert auth.login("nobody@example.com", "wrong password").status_code == 401
    assert bcrypt_work == [CONFIGURED]


def test_a_legacy_hash_still_logs_in_and_is_rehashed(
    make_app: Any, engine: Engine, bcrypt_work: list[int]
) -> None:
    insert_user(engine, "old@example.com", hash_password(PASSWORD, 4))
    auth = Auth(make_app(TOKENAUTH_BCRYPT_ROUNDS=CONFIGURED).test_client())
    assert auth.login("old@example.com").status_code == 200
    assert work(bcrypt_work) == 2**CONFIGURED
    with engine.connect() as conn:
        stored = conn.execute(
            text("SELECT password_hash FROM tokenauth_users")
        ).scalar_one()
    assert hash_rounds(stored) == CONFIGURED


def test_a_wrong_current_password_costs_the_same(
    make_app: Any, engine: Engine, bcrypt_work: list[int]
) -> None:
    """``POST /password`` checks the current password with the same padding."""
    app = make_app(TOKENAUTH_BCRYPT_ROUNDS=CONFIGURED)
    auth = Auth(app.test_client())
    user_id = auth.register().get_json()["user"]["id"]
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE tokenauth_users SET password_hash = :h"),
            {"h": hash_password(PASSWORD, 4)},
        )
    # A session of the hash as it is now: the one of the registration is
    # bound to the hash it replaced (identity binding) and ended with it.
    headers = auth_headers(user_id, app)
    bcrypt_work.clear()
    response = auth.client.post(
        "/api/auth/password",
        json={"currentPassword": "wrong password", "newPassword": "tram orbit 42"},
        headers=headers,
    )
    assert response.status_code == 403
    assert work(bcrypt_work) == 2**CONFIGURED


@pytest.mark.parametrize("spent", [None, 4, 5, 9, 11, 12, 13])
def test_padding_adds_up_to_one_check_at_the_configured_cost(
    bcrypt_work: list[int], spent: int | None
) -> None:
    _passwords.pad_to_rounds(spent, 12)
    already = 0 if spent is None else 2**spent
    assert work(bcrypt_work) == max(2**12, already) - already
    # Dummy checks of increasing cost, never more than one per cost.
    assert bcrypt_work == sorted(set(bcrypt_work))


# -- the dummy hash is made on first need ---------------------------------------


@pytest.fixture
def bcrypt_hashing(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every call of bcrypt's ``gensalt`` and ``hashpw`` from now on, with an
    empty per-process cache of dummy hashes."""
    calls: list[str] = []
    real_gensalt, real_hashpw = bcrypt.gensalt, bcrypt.hashpw

    def gensalt(*args: Any, **kwargs: Any) -> bytes:
        calls.append("gensalt")
        return real_gensalt(*args, **kwargs)

    def hashpw(password: bytes, salt: bytes) -> bytes:
        calls.append(f"hashpw {hash_rounds(salt.decode() + 'x' * 31)}")
        return real_hashpw(password, salt)

    monkeypatch.setattr(_passwords.bcrypt, "gensalt", gensalt)
    monkeypatch.setattr(_passwords.bcrypt, "hashpw", hashpw)
    monkeypatch.setattr(_passwords, "_dummy_hashes", {})
    return calls


def test_creating_an_app_does_no_bcrypt_work(
    make_app: Any, bcrypt_hashing: list[str]
) -> None:
    app = make_app(TOKENAUTH_BCRYPT_ROUNDS=12)
    make_app(TOKENAUTH_BCRYPT_ROUNDS=12)
    assert bcrypt_hashing == []
    # The first unknown-email login makes the dummy hash, the next reuses it.
    auth = Auth(app.test_client())
    assert auth.login("nobody@example.com").status_code == 401
    assert bcrypt_hashing == ["gensalt", "hashpw 12"]
    assert auth.login("nobody@example.com").status_code == 401
    assert bcrypt_hashing == ["gensalt", "hashpw 12"]


def test_concurrent_first_needs_make_one_dummy_hash(
    bcrypt_hashing: list[str],
) -> None:
    n = 8
    barrier = threading.Barrier(n)
    results: list[str] = []

    def worker() -> None:
        barrier.wait(timeout=30)
        results.append(_passwords.dummy_hash(8))

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == n and len(set(results)) == 1
    assert bcrypt_hashing == ["gensalt", "hashpw 8"]
