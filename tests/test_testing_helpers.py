"""flask_tokenauth.testing and the pytest plugin: a host app's own tests
get a signed-in client or headers for a user in one line, without HTTP and
without bcrypt, on every database and revocation store."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, cast

import bcrypt
import pytest
from flask import Flask, request_started
from sqlalchemy import Engine, Table, insert, select

from flask_tokenauth import (
    Session,
    User,
    auth_bp,
    current_claims,
    current_user,
    login_required,
    revoke_user_sessions,
)
from flask_tokenauth.testing import (
    USER_AGENT,
    TokenAuthClient,
    access_token_for,
    auth_headers,
    start_session,
    user_id_of,
)

from .conftest import bearer

REPO = Path(__file__).resolve().parent.parent
STORES = ["database", "redis", "off"]


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The config of each revocation store."""
    config: dict[str, Any] = {"TOKENAUTH_REVOCATION": request.param}
    if request.param == "redis":
        config.update(request.getfixturevalue("redis_config"))
    return config


def host_app(app: Flask) -> Flask:
    """A host app's own routes, protected as a host protects them."""

    @app.get("/me")
    @login_required
    def me() -> dict[str, Any]:
        return {"id": current_user.id, "email": current_user.email}

    @app.get("/claims")
    @login_required
    def claims() -> dict[str, Any]:
        return {"sub": current_claims["sub"]}

    app.test_client_class = TokenAuthClient
    return app


def create_user(engine: Engine, email: str = "host@example.com") -> int:
    """A user created the way a host's fixture would, without bcrypt."""
    now = datetime.now(timezone.utc)
    with engine.begin() as conn:
        return int(
            conn.execute(
                insert(cast(Table, User.__table__))
                .values(email=email, password_hash="!", created_at=now, updated_at=now)
                .returning(User.__table__.c.id)
            ).scalar_one()
        )


class FlaskLoginStyleUser:
    """A host user object as Flask-Login's ``UserMixin`` presents it."""

    def __init__(self, user_id: int) -> None:
        self._id = user_id

    def get_id(self) -> str:
        return str(self._id)


class PlainUser:
    def __init__(self, user_id: int) -> None:
        self.id = user_id


@pytest.fixture
def cost_counter(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    """How many HTTP requests reach the app and how many bcrypt calls run."""
    counts = {"requests": 0, "bcrypt": 0}

    def on_request(sender: Any, **extra: Any) -> None:
        counts["requests"] += 1

    for name in ("hashpw", "checkpw", "gensalt", "kdf"):
        real = getattr(bcrypt, name)

        def spy(*args: Any, _real: Any = real, **kwargs: Any) -> Any:
            counts["bcrypt"] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(bcrypt, name, spy)
    request_started.connect(on_request)
    try:
        yield counts
    finally:
        request_started.disconnect(on_request)


@pytest.mark.parametrize("who", ["object", "flask-login object", "id", "str id"])
def test_a_client_for_a_user_in_one_line(
    make_app: Any, engine: Engine, store: dict[str, Any], who: str
) -> None:
    app = host_app(make_app(**store))
    user_id = create_user(engine)
    user: Any = {
        "object": PlainUser(user_id),
        "flask-login object": FlaskLoginStyleUser(user_id),
        "id": user_id,
        "str id": str(user_id),
    }[who]

    client = app.test_client(user=user)

    for _ in range(2):  # every request, not only the first
        response = client.get("/me")
        assert response.status_code == 200, response.json
        assert response.json == {"id": user_id, "email": "host@example.com"}
    assert client.get("/claims").json == {"sub": str(user_id)}


def test_headers_and_token_for_requests_a_test_builds(
    make_app: Any, engine: Engine, store: dict[str, Any]
) -> None:
    app = host_app(make_app(**store))
    user_id = create_user(engine)
    client = app.test_client()  # a plain client: no user

    assert client.get("/me").status_code == 401
    assert client.get("/me", headers=auth_headers(user_id, app)).status_code == 200
    with app.app_context():  # the current app by default
        token = access_token_for(user_id)
    assert client.get("/me", headers=bearer(token)).json["id"] == user_id


def test_the_helpers_do_no_http_and_no_bcrypt(
    make_app: Any, engine: Engine, store: dict[str, Any], cost_counter: dict[str, int]
) -> None:
    app = host_app(make_app(TOKENAUTH_BCRYPT_ROUNDS=12, **store))
    user_id = create_user(engine)

    client = app.test_client(user=user_id)
    headers = auth_headers(user_id, app)
    assert cost_counter == {"requests": 0, "bcrypt": 0}

    assert client.get("/me").status_code == 200
    assert app.test_client().get("/me", headers=headers).status_code == 200
    assert cost_counter == {"requests": 2, "bcrypt": 0}


def test_each_call_is_a_real_session_of_the_user(
    make_app: Any, engine: Engine, store: dict[str, Any]
) -> None:
    app = host_app(make_app(**store))
    user_id = create_user(engine)

    first, second = start_session(user_id, app), start_session(user_id, app)

    assert first.session_id != second.session_id
    sessions = cast(Table, Session.__table__)
    with engine.begin() as conn:
        rows = conn.execute(
            select(sessions.c.id, sessions.c.user_agent).where(
                sessions.c.user_id == str(user_id)
            )
        ).all()
    assert sorted(rows) == sorted(
        [(first.session_id, USER_AGENT), (second.session_id, USER_AGENT)]
    )
    # The host's session list shows it as one of the user's sessions.
    listed = app.test_client(user=user_id).get("/api/auth/sessions")
    assert listed.status_code == 200, listed.json


def test_a_revoked_session_refuses_the_helper_token(
    make_app: Any, engine: Engine, store: dict[str, Any]
) -> None:
    app = host_app(make_app(**store))
    user_id = create_user(engine)
    client = app.test_client(user=user_id)
    assert client.get("/me").status_code == 200

    with app.app_context():
        revoke_user_sessions(user_id)

    refreshed = client.post("/api/auth/refresh")
    assert refreshed.status_code == 401
    assert refreshed.json["code"] == "REFRESH_TOKEN_REVOKED"
    response = client.get("/me")
    if store["TOKENAUTH_REVOCATION"] == "off":
        # No store to ask: an access token lives out its few minutes.
        assert response.status_code == 200
    else:
        assert response.status_code == 401
        assert response.json["code"] == "TOKEN_REVOKED"


@pytest.mark.parametrize("url_prefix", [None, "/v2/auth"])
def test_the_client_holds_the_refresh_cookie(
    make_app: Any, engine: Engine, url_prefix: str | None
) -> None:
    app = host_app(make_app(url_prefix=url_prefix))
    user_id = create_user(engine)
    client = app.test_client(user=user_id)
    prefix = url_prefix or "/api/auth"

    refreshed = client.post(f"{prefix}/refresh")

    assert refreshed.status_code == 200, refreshed.json
    fresh = refreshed.json["accessToken"]
    assert client.get("/me", headers=bearer(fresh)).json["id"] == user_id
    assert client.post(f"{prefix}/logout").status_code == 200
    assert client.get("/me").json["code"] == "TOKEN_REVOKED"


def test_the_refresh_cookie_follows_every_mount(make_app: Any, engine: Engine) -> None:
    app = make_app()
    app.register_blueprint(auth_bp, name="second_mount", url_prefix="/v3/auth")
    client = host_app(app).test_client(user=create_user(engine))

    # One session, one token: whichever mount refreshes first spends it.
    assert client.post("/v3/auth/refresh").status_code == 200


def test_a_request_s_own_header_wins(make_app: Any, engine: Engine) -> None:
    app = host_app(make_app())
    alice, bob = create_user(engine, "alice@example.com"), create_user(engine)
    client = app.test_client(user=alice)

    response = client.get("/me", headers=auth_headers(bob, app))

    assert response.json["id"] == bob
    assert client.get("/me").json["id"] == alice


def test_a_client_without_cookies_still_signs_in(make_app: Any, engine: Engine) -> None:
    app = host_app(make_app())
    user_id = create_user(engine)

    client = app.test_client(use_cookies=False, user=user_id)

    assert client.get("/me").json["id"] == user_id


def test_an_unknown_user_fails_at_the_helper(make_app: Any, engine: Engine) -> None:
    app = host_app(make_app())
    with pytest.raises(LookupError, match="No user with id 4242"):
        app.test_client(user=4242)
    with pytest.raises(TypeError, match="user object"):
        auth_headers(1.5, app)


@pytest.mark.parametrize(
    ("user", "expected"),
    [(7, 7), ("7", 7), (PlainUser(7), 7), (FlaskLoginStyleUser(7), 7)],
)
def test_user_id_of(user: Any, expected: int) -> None:
    assert user_id_of(user) == expected


# The pytest plugin, in a host project of its own (a subprocess: a pytest
# run inside this one would share its plugins and fixtures).

HOST_CONFTEST = """\
from datetime import datetime, timezone

import pytest
from flask import Flask
from sqlalchemy import insert

from flask_tokenauth import TokenAuth, User, auth_bp, current_user, login_required
from flask_tokenauth._engine import make_engine
from flask_tokenauth._migrate import upgrade


@pytest.fixture
def app(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'host.sqlite3'}", {})
    upgrade(engine)
    app = Flask(__name__)
    app.config.update(
        TOKENAUTH_ACCESS_SECRET="access-secret-for-host-tests-" + "a" * 40,
        TOKENAUTH_REFRESH_SECRET="refresh-secret-for-host-tests-" + "b" * 40,
    )
    TokenAuth(engine=engine).init_app(app)
    app.register_blueprint(auth_bp)

    @app.get("/api/profile")
    @login_required
    def profile():
        return {"email": current_user.email}

    app.engine = engine
    return app


@pytest.fixture
def alice(app):
    now = datetime.now(timezone.utc)
    with app.engine.begin() as conn:
        conn.execute(insert(User).values(
            id=1, email="alice@example.com", password_hash="!",
            created_at=now, updated_at=now,
        ))
    return 1
"""

HOST_TESTS = """\
def test_client(tokenauth_client, alice):
    response = tokenauth_client(alice).get("/api/profile")
    assert response.json == {"email": "alice@example.com"}


def test_headers(app, tokenauth_headers, alice):
    response = app.test_client().get("/api/profile", headers=tokenauth_headers(alice))
    assert response.json == {"email": "alice@example.com"}
"""


def host_env() -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("FLASK_", "TOKENAUTH_", "PYTEST_"))
    }
    env["PYTHONPATH"] = str(REPO)  # the plugin module, installed or not
    return env


def test_the_pytest_plugin_in_a_host_suite(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(HOST_CONFTEST)
    (tmp_path / "test_host.py").write_text(HOST_TESTS)
    # Loaded by name whether or not this environment has the entry point
    # (which the wheel test checks): blocked under its entry-point name first,
    # so that it is not registered twice.
    args = ["-q", "-p", "no:cacheprovider", "-p", "no:flask_tokenauth"]
    args += ["-p", "pytest_flask_tokenauth", str(tmp_path)]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *args],
        cwd=tmp_path,
        env=host_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_loading_the_plugin_imports_nothing_heavy() -> None:
    check = textwrap.dedent(
        """
        import sys
        import pytest_flask_tokenauth
        heavy = {"flask", "flask_tokenauth", "sqlalchemy", "flask_limiter"}
        print(sorted(heavy & set(sys.modules)))
        fixtures = [
            name for name in vars(pytest_flask_tokenauth)
            if name.startswith("tokenauth_")
        ]
        print(sorted(fixtures))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", check],
        env=host_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded, fixtures = result.stdout.splitlines()
    assert loaded == "[]"
    assert fixtures == "['tokenauth_client', 'tokenauth_headers', 'tokenauth_tables']"
