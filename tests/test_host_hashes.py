"""The password hashes a host's table already holds (flask_tokenauth/
_hostpasswords.py): Flask-Bcrypt's ``bytes`` in a ``LargeBinary`` column,
passlib's formats, an unknown format logged once, and an unknown login
checked against a hash of the users' own scheme and cost; on SQLite and
PostgreSQL."""

from __future__ import annotations

import importlib.util
import logging
import warnings
from collections.abc import Iterator
from typing import Any

import bcrypt
import pytest
from sqlalchemy import Engine, Integer, LargeBinary, String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from werkzeug.security import generate_password_hash

from flask_tokenauth import _hostpasswords
from flask_tokenauth._hostpasswords import DummyHashes, as_text, scheme_of
from flask_tokenauth._passwords import hash_password
from flask_tokenauth.userstore import SQLAlchemyUserStore

from .conftest import PASSWORD
from .test_userstore import assert_code, host_app, login

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # passlib's crypt import
    from passlib import hash as passlib_hash


def binary_model() -> type[Any]:
    """A Flask-Bcrypt app's user: the hash as ``bytes`` in a ``LargeBinary``
    column (``bcrypt.generate_password_hash`` returns bytes)."""

    class Base(DeclarativeBase):
        pass

    class User(Base):
        __tablename__ = "users"
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        username: Mapped[str] = mapped_column(String(80), unique=True)
        password_hash: Mapped[bytes | None] = mapped_column(LargeBinary(255))

    return User


def text_model() -> type[Any]:
    class Base(DeclarativeBase):
        pass

    class User(Base):
        __tablename__ = "users"
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        username: Mapped[str] = mapped_column(String(80), unique=True)
        password_hash: Mapped[str | None] = mapped_column(String(255))

    return User


@pytest.fixture
def binary_host(engine: Engine) -> Iterator[type[Any]]:
    model = binary_model()
    model.metadata.create_all(engine)
    yield model
    model.metadata.drop_all(engine)


@pytest.fixture
def text_host(engine: Engine) -> Iterator[type[Any]]:
    model = text_model()
    model.metadata.create_all(engine)
    yield model
    model.metadata.drop_all(engine)


def add(engine: Engine, model: type[Any], username: str, stored: Any) -> None:
    with Session(engine) as session:
        session.add(model(username=username, password_hash=stored))
        session.commit()


def stored_hash(engine: Engine, model: type[Any], username: str = "alice") -> Any:
    with Session(engine) as session:
        return session.scalar(
            select(model.password_hash).where(model.username == username)
        )


def flask_bcrypt_hash(password: str, rounds: int = 4, prefix: bytes = b"2b") -> bytes:
    """What Flask-Bcrypt's ``generate_password_hash`` stores: bcrypt's own
    ``hashpw`` of the UTF-8 password, as bytes."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds, prefix))


@pytest.mark.parametrize("prefix", ["2a", "2b", "2y"])
def test_flask_bcrypt_rows_log_in_and_are_rehashed_as_bytes(
    engine: Engine, binary_host: type[Any], prefix: str
) -> None:
    stored = flask_bcrypt_hash(PASSWORD, 4, b"2b").replace(
        b"$2b$", f"${prefix}$".encode()
    )
    add(engine, binary_host, "alice", stored)
    app = host_app(
        engine,
        SQLAlchemyUserStore(binary_host, login="username"),
        TOKENAUTH_BCRYPT_ROUNDS=5,
    )
    assert_code(login(app, password="wrong")[1], 401, "INVALID_CREDENTIALS")
    assert login(app)[1].status_code == 200
    # The cost changed: the new hash is written as the column holds it,
    # bytes that Flask-Bcrypt (plain bcrypt) still reads.
    rehashed = stored_hash(engine, binary_host)
    assert isinstance(rehashed, bytes) and rehashed.startswith(b"$2b$05$")
    assert bcrypt.checkpw(PASSWORD.encode(), rehashed)
    assert login(app)[1].status_code == 200


def test_a_memoryview_or_bytes_hash_is_read_as_text() -> None:
    stored = flask_bcrypt_hash(PASSWORD)
    assert as_text(memoryview(stored)) == stored.decode()
    assert as_text(bytearray(stored)) == stored.decode()
    assert as_text(b"\xff\xfe") is None
    assert as_text(None) is None


PASSLIB_HASHES = {
    "pbkdf2_sha256": lambda: passlib_hash.pbkdf2_sha256.using(rounds=1000),
    "pbkdf2_sha512": lambda: passlib_hash.pbkdf2_sha512.using(rounds=1000),
    "sha256_crypt": lambda: passlib_hash.sha256_crypt.using(rounds=1000),
    "sha512_crypt": lambda: passlib_hash.sha512_crypt.using(rounds=1000),
    "scrypt": lambda: passlib_hash.scrypt.using(rounds=4),
    "bcrypt": lambda: None,
}


@pytest.mark.parametrize("scheme", sorted(PASSLIB_HASHES))
def test_passlib_hashes_log_in_with_the_default_verify(
    engine: Engine, text_host: type[Any], scheme: str
) -> None:
    if scheme == "bcrypt":
        # passlib 1.7's bcrypt backend fails with bcrypt 5; its hashes are
        # plain bcrypt ($2b$), made here as it makes them.
        stored = flask_bcrypt_hash(PASSWORD).decode()
    else:
        handler = PASSLIB_HASHES[scheme]()
        stored = handler.hash(PASSWORD)
        assert handler.verify(PASSWORD, stored)
    add(engine, text_host, "alice", stored)
    app = host_app(engine, SQLAlchemyUserStore(text_host, login="username"))
    assert login(app)[1].status_code == 200
    assert_code(login(app, password="wrong")[1], 401, "INVALID_CREDENTIALS")


@pytest.mark.parametrize("scheme", sorted(set(PASSLIB_HASHES) - {"bcrypt"}))
def test_a_nul_in_the_current_password_is_a_wrong_one_whatever_the_scheme(
    engine: Engine, text_host: type[Any], scheme: str
) -> None:
    """passlib's ``sha256_crypt``/``sha512_crypt`` raise for a NUL in the
    password: ``/password`` must answer it as the wrong password it is (no
    password we accept holds one), not as a 500."""
    add(engine, text_host, "alice", PASSLIB_HASHES[scheme]().hash(PASSWORD))
    app = host_app(engine, SQLAlchemyUserStore(text_host, login="username"))
    client, response = login(app)
    token = response.get_json()["accessToken"]
    answer = client.post(
        "/api/auth/password",
        json={"currentPassword": PASSWORD + "\x00", "newPassword": "x" * 20 + "!7q"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert_code(answer, 403, "WRONG_PASSWORD")


@pytest.mark.parametrize(
    "stored",
    [
        "$md5$rounds=1000$salt$checksum",
        "plain text hunter2",
        # passlib's bcrypt_sha256 is not our $bcrypt-sha256$ (nor read).
        "$bcrypt-sha256$v=2,t=2b,r=12$n79VH.0Q2TMWmt3Oqt9uku$Kq4Noyk3094Y2QlB8NdRT8S",
        # argon2 without argon2-cffi: the warning says what to install.
        "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
    ],
    ids=["md5-crypt", "plain", "passlib-bcrypt-sha256", "argon2-no-backend"],
)
def test_an_unknown_format_is_a_mismatch_logged_once(
    engine: Engine,
    text_host: type[Any],
    stored: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    if stored.startswith("$argon2") and importlib.util.find_spec("argon2"):
        pytest.skip("argon2-cffi is installed: passlib reads argon2")
    add(engine, text_host, "alice", stored)
    add(engine, text_host, "bob", "$2b$04$" + "x" * 53)  # malformed: no warning
    app = host_app(engine, SQLAlchemyUserStore(text_host, login="username"))
    with caplog.at_level(logging.WARNING, logger="flask_tokenauth"):
        for _ in range(3):
            assert_code(login(app)[1], 401, "INVALID_CREDENTIALS")
        assert_code(login(app, "bob")[1], 401, "INVALID_CREDENTIALS")
    warnings_logged = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings_logged) == 1, caplog.text
    message = warnings_logged[0].getMessage()
    assert "verify=" in message and "password_hash" in message
    # It names the scheme at most, never the value.
    assert stored[-6:] not in message
    assert ("argon2-cffi" in message) == stored.startswith("$argon2")


# -- an unknown login costs a check of the users' own scheme -----------------------

SCHEMES = {
    "bcrypt": lambda: hash_password(PASSWORD, 5),
    "flask-bcrypt": lambda: flask_bcrypt_hash(PASSWORD, 5),
    "pbkdf2-werkzeug": lambda: generate_password_hash(
        PASSWORD, method="pbkdf2:sha256:2000"
    ),
    "scrypt-werkzeug": lambda: generate_password_hash(PASSWORD, method="scrypt"),
    "pbkdf2-passlib": lambda: passlib_hash.pbkdf2_sha256.using(rounds=1500).hash(
        PASSWORD
    ),
}


@pytest.fixture
def checked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The scheme and cost of every hash a check reads from now on."""
    seen: list[str] = []
    real = _hostpasswords.check

    def spy(stored: str, password: str, **kwargs: Any) -> bool | None:
        seen.append(scheme_of(stored))
        return real(stored, password, **kwargs)

    monkeypatch.setattr(_hostpasswords, "check", spy)
    return seen


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_an_unknown_login_checks_a_hash_of_the_users_scheme_and_cost(
    engine: Engine, binary_host: type[Any], scheme: str, checked: list[str]
) -> None:
    """Even as the process's first login: the table is sampled first."""
    stored = SCHEMES[scheme]()
    add(
        engine,
        binary_host,
        "alice",
        stored if isinstance(stored, bytes) else stored.encode(),
    )
    users_scheme = scheme_of(as_text(stored) or "")
    app = host_app(engine, SQLAlchemyUserStore(binary_host, login="username"))
    assert_code(login(app, "nobody")[1], 401, "INVALID_CREDENTIALS")
    assert checked and set(checked) == {users_scheme}, checked
    checked.clear()
    assert_code(login(app, "alice", "wrong")[1], 401, "INVALID_CREDENTIALS")
    assert_code(login(app, "nobody")[1], 401, "INVALID_CREDENTIALS")
    # One check each, of one scheme and cost: the user's and the dummy's.
    assert checked == [users_scheme, users_scheme]


def test_an_explicit_dummy_hash_wins(
    engine: Engine, text_host: type[Any], checked: list[str]
) -> None:
    add(engine, text_host, "alice", hash_password(PASSWORD, 5))
    dummy = generate_password_hash("x", method="pbkdf2:sha256:1000")
    store = SQLAlchemyUserStore(text_host, login="username", dummy_hash=dummy)
    app = host_app(engine, store)
    login(app, "nobody")
    assert checked[-1] == "pbkdf2:sha256:1000"


def test_the_dummy_is_the_costliest_scheme_seen() -> None:
    """Each scheme's cost is its fastest check (the least disturbed by load);
    an unknown login is checked against a hash of the costliest."""
    cheap = generate_password_hash("x", method="pbkdf2:sha256:1000")
    dear = hash_password("x", 4)
    other_cheap = generate_password_hash("y", method="pbkdf2:sha256:1000")
    dummies = DummyHashes()
    assert dummies.costliest() is None
    dummies.record(cheap, 0.002)
    assert dummies.costliest() == cheap
    dummies.record(dear, 0.200)
    dummies.record(other_cheap, 0.900)  # one slow check under load
    assert dummies.costliest() == dear
    assert dummies.schemes() == {"pbkdf2:sha256:1000": 0.002, "bcrypt$4": 0.2}


@pytest.mark.parametrize(
    ("stored", "scheme"),
    [
        ("$2b$12$" + "a" * 53, "bcrypt$12"),
        ("$2y$10$" + "a" * 53, "bcrypt$10"),
        ("$bcrypt-sha256$$2b$11$" + "a" * 53, "bcrypt$11"),
        ("pbkdf2:sha256:600000$salt$hash", "pbkdf2:sha256:600000"),
        ("scrypt:32768:8:1$salt$hash", "scrypt:32768:8:1"),
        ("$pbkdf2-sha256$29000$salt$hash", "$pbkdf2-sha256$29000"),
        ("$5$rounds=535000$salt$hash", "$5$rounds=535000"),
        ("$argon2id$v=19$m=65536,t=3,p=4$salt$hash", "$argon2id$v=19$m=65536,t=3,p=4"),
    ],
)
def test_scheme_of_names_scheme_and_cost(stored: str, scheme: str) -> None:
    assert scheme_of(stored) == scheme


class PlainContext:
    """A passlib look-alike: ``verify`` and ``hash``, no ``identify``."""

    def verify(self, password: str, stored: str) -> bool:
        return stored == "plain:" + password

    def hash(self, password: str) -> str:
        return "plain:" + password


def test_a_context_look_alike_and_a_context_that_does_not_know_the_hash(
    engine: Engine, text_host: type[Any], caplog: pytest.LogCaptureFixture
) -> None:
    add(engine, text_host, "alice", "plain:" + PASSWORD)
    app = host_app(
        engine, SQLAlchemyUserStore(text_host, login="username", verify=PlainContext())
    )
    assert login(app)[1].status_code == 200
    assert_code(login(app, password="wrong")[1], 401, "INVALID_CREDENTIALS")
    context = passlib_hash.pbkdf2_sha256  # a handler: identify, verify, hash
    app = host_app(
        engine, SQLAlchemyUserStore(text_host, login="username", verify=context)
    )
    with caplog.at_level(logging.WARNING, logger="flask_tokenauth"):
        assert_code(login(app)[1], 401, "INVALID_CREDENTIALS")
    assert "<CryptContext>" in caplog.text
