"""The existing-app example (``examples/existing_app/``): a Flask-SQLAlchemy
+ Flask-Migrate + Flask-Login + Flask-WTF app with its own ``User`` (username,
werkzeug hashes, ``active``), its own login page and migrations, that adds
token auth to its ``/api`` in at most ten marked lines, the mail flows in
three more, and the second factor in at most three more.

On SQLite and PostgreSQL.  Tests that only need a signed-in API client use
the test kit (``TokenAuthClient`` / ``auth_headers``), as the app's own suite
would; the HTTP login is tested where it is the point.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import io
import re
import shutil
import sys
import time
import tokenize
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import bcrypt
import pytest
from flask import Flask, request_started
from flask.testing import FlaskClient
from sqlalchemy import inspect, text
from werkzeug.security import generate_password_hash

from flask_tokenauth import (
    TokenAuthClient,
    _hostpasswords,
    _passwords,
    auth_headers,
    login_required,
)
from flask_tokenauth._state import get_state
from flask_tokenauth.models import metadata
from flask_tokenauth.testing import USER_AGENT

from .conftest import ACCESS_SECRET, REFRESH_SECRET, bearer
from .test_host_migrations import logging_restored, new_revisions, run
from .test_migrations import fresh_database

pytestmark = pytest.mark.filterwarnings(
    # Flask-Migrate's env.py template asks Flask-SQLAlchemy 3.1 for get_engine().
    "ignore:'get_engine' is deprecated:DeprecationWarning"
)

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "existing_app"
PASSWORD = "alice's own werkzeug password"


@pytest.fixture(scope="module")
def example() -> Iterator[SimpleNamespace]:
    """The example's ``create_app``, ``db``, ``User``, ``Note`` and
    ``user_store``.  Loaded as a package (its modules import each other
    relatively) from its folder, without touching ``sys.path``; once, as its
    models can be declared only once."""
    spec = importlib.util.spec_from_file_location(
        "existing_app",
        EXAMPLE / "__init__.py",
        submodule_search_locations=[str(EXAMPLE)],
    )
    assert spec and spec.loader
    package = importlib.util.module_from_spec(spec)
    sys.modules["existing_app"] = package
    spec.loader.exec_module(package)
    try:
        app = importlib.import_module("existing_app.app")
        models = importlib.import_module("existing_app.models")
        yield SimpleNamespace(
            create_app=app.create_app,
            db=models.db,
            User=models.User,
            Note=models.Note,
            user_store=models.user_store,
        )
    finally:
        for name in [n for n in sys.modules if n.split(".")[0] == "existing_app"]:
            del sys.modules[name]


def config_for(url: str, **overrides: Any) -> dict[str, Any]:
    return {
        "TESTING": True,
        "SECRET_KEY": "host-secret-for-tests",
        "SQLALCHEMY_DATABASE_URI": url,
        "TOKENAUTH_ACCESS_SECRET": ACCESS_SECRET,
        "TOKENAUTH_REFRESH_SECRET": REFRESH_SECRET,
        **overrides,
    }


def retire(example: SimpleNamespace, app: Flask) -> None:
    """Close a test app's two engines (the host's and ours) and take it off
    the module-level user store, which otherwise keeps every app it was
    attached to and would end a deleted user's sessions on each of them,
    databases long dropped included."""
    with app.app_context():
        example.db.engine.dispose()
    get_state(app).db.engine.dispose()
    apps = example.user_store._apps
    if app in apps:
        apps.remove(app)


@pytest.fixture
def make_app(example: SimpleNamespace) -> Iterator[Callable[..., Flask]]:
    """``make_app(url, **config)``: the example's ``create_app``, retired
    after the test."""
    made: list[Flask] = []

    def factory(url: str, **config: Any) -> Flask:
        app: Flask = example.create_app(config_for(url, **config))
        made.append(app)
        return app

    yield factory
    for app in made:
        retire(example, app)


def migrate_host(app: Flask) -> None:
    """The host's own ``flask db upgrade`` (its checked-in migrations)."""
    run(app.test_cli_runner(), "db", "upgrade")


@pytest.fixture(scope="module")
def host_url(
    database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    example: SimpleNamespace,
) -> Iterator[str]:
    """A database of this module's own with the host's tables and ours, as
    both migration histories make them."""
    with ExitStack() as stack:
        url = stack.enter_context(
            fresh_database(database_url, tmp_path_factory.mktemp("host"))
        )
        stack.enter_context(logging_restored())
        app = example.create_app(config_for(url))
        migrate_host(app)
        run(app.test_cli_runner(), "tokenauth", "db", "upgrade")
        retire(example, app)
        yield url


@pytest.fixture
def app(
    make_app: Callable[..., Flask], host_url: str, example: SimpleNamespace
) -> Iterator[Flask]:
    app = make_app(host_url)
    yield app
    with app.app_context():  # every row of this test, the host's and ours
        db = example.db
        names = ["note", "user"] + [t.name for t in reversed(metadata.sorted_tables)]
        with db.engine.begin() as conn:
            for name in names:
                conn.execute(text(f'DELETE FROM "{name}"'))


def add_user(
    example: SimpleNamespace, username: str, password: str = PASSWORD, **fields: Any
) -> Any:
    """A user made the host's way: its model, werkzeug's hash, its session."""
    user = example.User(username=username, **fields)
    user.set_password(password)
    example.db.session.add(user)
    example.db.session.commit()
    return user


def login(client: FlaskClient, username: str, password: str = PASSWORD) -> Any:
    return client.post(
        "/api/auth/login", json={"username": username, "password": password}
    )


# -- 1. an existing user logs in with tokens -----------------------------------


@pytest.mark.parametrize("method", ["scrypt", "pbkdf2"])
def test_user_from_before_the_library_logs_in_by_username(
    make_app: Callable[..., Flask],
    example: SimpleNamespace,
    database_url: str,
    tmp_path: Path,
    method: str,
) -> None:
    with fresh_database(database_url, tmp_path) as url, logging_restored():
        app = make_app(url)
        migrate_host(app)
        with app.app_context():
            # Before flask_tokenauth's tables exist: the app as it was.
            alice = example.User(
                username="alice", password_hash=generate_password_hash(PASSWORD, method)
            )
            example.db.session.add(alice)
            example.db.session.commit()
            alice_id = alice.id
            names = set(inspect(example.db.engine).get_table_names())
            assert not any(name.startswith("tokenauth_") for name in names)

        run(app.test_cli_runner(), "tokenauth", "db", "upgrade")

        client = app.test_client()
        response = login(client, "alice")
        assert response.status_code == 200, response.json
        assert response.json["user"] == {"id": alice_id, "username": "alice"}
        token = response.json["accessToken"]

        created = client.post(
            "/api/notes", json={"text": "hello"}, headers=bearer(token)
        )
        assert created.status_code == 201, created.json
        listed = client.get("/api/notes", headers=bearer(token))
        assert listed.json == {"user": "alice", "notes": [created.json]}
        with app.app_context():  # sub is the host's id: the note is alice's
            note = example.db.session.get(example.Note, created.json["id"])
            assert note.user_id == alice_id

        assert login(client, "alice", "wrong").json["code"] == "INVALID_CREDENTIALS"
        assert login(client, "nobody").json["code"] == "INVALID_CREDENTIALS"
        # The app has its own sign-up: /register is switched off.
        register = client.post(
            "/api/auth/register", json={"username": "mallory", "password": PASSWORD}
        )
        assert register.status_code == 404
        assert client.get("/api/notes").json["code"] == "TOKEN_MISSING"


# -- 2. deleted or disabled on the host ------------------------------------------


def signed_in(app: Flask, user: Any) -> TokenAuthClient:
    app.test_client_class = TokenAuthClient
    client = app.test_client(user=user)
    assert isinstance(client, TokenAuthClient)
    assert client.get("/api/notes").status_code == 200
    return client


def refresh(client: FlaskClient) -> Any:
    return client.post("/api/auth/refresh")


def test_orm_deletion_ends_refresh_and_access_at_once(
    app: Flask, example: SimpleNamespace
) -> None:
    with app.app_context():
        bob = add_user(example, "bob")
        client = signed_in(app, bob)
        example.db.session.delete(bob)
        example.db.session.commit()
    access = client.get("/api/notes")
    assert access.status_code == 401
    assert access.json["code"] == "TOKEN_REVOKED"
    assert refresh(client).json["code"] == "REFRESH_TOKEN_REVOKED"
    assert login(app.test_client(), "bob").json["code"] == "INVALID_CREDENTIALS"


def test_raw_sql_deletion(app: Flask, example: SimpleNamespace) -> None:
    """What the library documents: a deletion it cannot see ends the next
    refresh, and every request that loads ``current_user``; a view that reads
    only the token's claims serves the token until it expires."""

    @login_required
    def claims_only() -> Any:
        return {"ok": True}

    app.add_url_rule("/api/claims-only", view_func=claims_only)
    with app.app_context():
        carol = add_user(example, "carol")
        client = signed_in(app, carol)
        with example.db.engine.begin() as conn:
            conn.execute(text('DELETE FROM "user" WHERE id = :id'), {"id": carol.id})
        example.db.session.expunge_all()
    access = client.get("/api/notes")  # uses current_user
    assert access.status_code == 401
    assert access.json["code"] == "USER_NOT_FOUND"
    assert client.get("/api/claims-only").status_code == 200  # until it expires
    refreshed = refresh(client)
    assert refreshed.status_code == 401
    assert refreshed.json["code"] == "REFRESH_TOKEN_INVALID"


def test_deactivation_ends_refresh_and_access_at_once(
    app: Flask, example: SimpleNamespace
) -> None:
    with app.app_context():
        dave = add_user(example, "dave")
        client = signed_in(app, dave)
        dave.active = False
        example.db.session.commit()
    access = client.get("/api/notes")
    assert access.status_code == 401
    assert access.json["code"] == "TOKEN_REVOKED"
    assert refresh(client).json["code"] == "REFRESH_TOKEN_REVOKED"
    assert login(app.test_client(), "dave").json["code"] == "INVALID_CREDENTIALS"
    # Nor through the app's own form (Flask-Login refuses inactive users).
    html = app.test_client()
    assert html_login(html, "dave").status_code == 400


def test_raw_sql_deactivation(app: Flask, example: SimpleNamespace) -> None:
    """Switched off behind the ORM's back: as a raw deletion."""
    with app.app_context():
        hank = add_user(example, "hank")
        client = signed_in(app, hank)
        with example.db.engine.begin() as conn:
            query = text('UPDATE "user" SET active = :no WHERE id = :id')
            conn.execute(query, {"no": False, "id": hank.id})
        example.db.session.expunge_all()
    access = client.get("/api/notes")  # current_user: no active user
    assert (access.status_code, access.json["code"]) == (401, "USER_NOT_FOUND")
    refreshed = refresh(client)
    assert (refreshed.status_code, refreshed.json["code"]) == (
        401,
        "REFRESH_TOKEN_REVOKED",
    )
    assert login(app.test_client(), "hank").json["code"] == "INVALID_CREDENTIALS"


def test_a_user_is_named_by_the_hosts_id_in_every_token(
    app: Flask, example: SimpleNamespace
) -> None:
    with app.app_context():
        add_user(example, "padding")  # ids differ from any count of ours
        erin = add_user(example, "erin")
        headers = auth_headers(erin, app)
    assert app.test_client().get("/api/notes", headers=headers).json["user"] == "erin"


# -- 3. the host's autogenerate after ours ----------------------------------------


def test_host_migrate_right_after_tokenauth_upgrade_reports_no_changes(
    make_app: Callable[..., Flask], database_url: str, tmp_path: Path
) -> None:
    directory = tmp_path / "migrations"
    shutil.copytree(
        EXAMPLE / "migrations", directory, ignore=shutil.ignore_patterns("__pycache__")
    )
    seen = set((directory / "versions").glob("*.py"))
    with fresh_database(database_url, tmp_path) as url, logging_restored():
        app = make_app(url)
        runner = app.test_cli_runner()
        run(runner, "db", "upgrade", "-d", str(directory))
        run(runner, "tokenauth", "db", "upgrade")
        output = run(runner, "db", "migrate", "-d", str(directory), "-m", "nothing")
        assert "No changes in schema detected" in output
        assert new_revisions(directory, seen) == []


# -- 4. the host's pages ---------------------------------------------------------


def csrf_token(page: str) -> str:
    match = re.search(
        r'name="csrf_token" type="hidden" value="([^"]+)"', page
    ) or re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


def html_login(client: FlaskClient, username: str, password: str = PASSWORD) -> Any:
    token = csrf_token(client.get("/login").get_data(as_text=True))
    return client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}
    )


def test_html_pages_keep_flask_login(app: Flask, example: SimpleNamespace) -> None:
    with app.app_context():
        add_user(example, "frank")
    client = app.test_client()
    assert "Hello visitor" in client.get("/").get_data(as_text=True)
    account = client.get("/account")
    assert account.status_code == 302
    assert account.location.startswith("/login")

    assert html_login(client, "frank", "wrong").status_code == 400
    # CSRFProtect still guards the app's own forms.
    no_token = client.post("/login", data={"username": "frank", "password": PASSWORD})
    assert no_token.status_code == 400
    response = html_login(client, "frank")
    assert response.status_code == 302, response.get_data(as_text=True)
    page = client.get("/account").get_data(as_text=True)
    assert "Account of frank" in page
    assert "Logged in as <strong>frank</strong>" in client.get("/").get_data(
        as_text=True
    )
    # The session cookie is not a token: the API wants a Bearer token.
    assert client.get("/api/notes").json["code"] == "TOKEN_MISSING"

    home = client.get("/").get_data(as_text=True)
    logout = client.post("/logout", data={"csrf_token": csrf_token(home)})
    assert logout.status_code == 302
    assert "Hello visitor" in client.get("/").get_data(as_text=True)
    assert client.get("/account").status_code == 302


def test_a_user_signed_up_on_the_html_page_logs_in_on_the_api(app: Flask) -> None:
    """The app's own sign-up (``/register`` is off): its users are the API's."""
    client = app.test_client()
    form = client.get("/signup").get_data(as_text=True)
    data = {"username": "ivy", "password": PASSWORD, "csrf_token": csrf_token(form)}
    assert client.post("/signup", data=data).status_code == 302
    assert "Account of ivy" in client.get("/account").get_data(as_text=True)
    taken = client.post("/signup", data=data)  # same form token, same session
    assert taken.status_code == 400
    assert "taken" in taken.get_data(as_text=True)

    token = login(app.test_client(), "ivy").json["accessToken"]
    listed = app.test_client().get("/api/notes", headers=bearer(token))
    assert listed.json == {"user": "ivy", "notes": []}


# -- 5. the app's own suite stays fast --------------------------------------------


@pytest.fixture
def hash_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every bcrypt and werkzeug (scrypt, PBKDF2) hash computed from now on,
    as in a new process: the dummy hashes kept for the process are
    forgotten, so that making one at app creation would be counted."""
    monkeypatch.setattr(_passwords, "_dummy_hashes", {})
    monkeypatch.setattr(_hostpasswords, "_werkzeug_dummies", [])
    calls: list[str] = []

    def counting(module: Any, name: str) -> None:
        real = getattr(module, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)

    for name in ("hashpw", "checkpw", "kdf"):
        counting(bcrypt, name)
    for name in ("scrypt", "pbkdf2_hmac"):
        counting(hashlib, name)
    return calls


def test_app_creation_and_signed_in_clients_cost_no_hashing_and_no_login(
    example: SimpleNamespace,
    host_url: str,
    make_app: Callable[..., Flask],
    hash_calls: list[str],
) -> None:
    started = time.perf_counter()
    app = make_app(host_url)
    elapsed = time.perf_counter() - started
    assert hash_calls == []
    print(f"create_app: {elapsed * 1000:.1f} ms")

    with app.app_context():
        user = example.User(username="gina", password_hash="not a real hash")
        example.db.session.add(user)
        example.db.session.commit()
        user_id = user.id
    paths: list[str] = []

    def record(sender: Flask, **extra: Any) -> None:
        from flask import request

        paths.append(request.path)

    with request_started.connected_to(record, app):
        client = signed_in(app, user_id)
        created = client.post("/api/notes", json={"text": "fast"})
        assert created.status_code == 201
        other = app.test_client().get("/api/notes", headers=auth_headers(user_id, app))
        assert other.json["notes"] == [created.json]
    assert hash_calls == []
    assert paths and not any(path.startswith("/api/auth") for path in paths), paths
    assert client.tokenauth_session is not None
    assert user_agents(app) == {USER_AGENT}
    # The counter sees hashing: a login (an unknown user's dummy check).
    assert login(app.test_client(), "nobody").status_code == 401
    assert hash_calls != []


def user_agents(app: Flask) -> set[str]:
    with get_state(app).db.begin() as conn:
        query = text("SELECT user_agent FROM tokenauth_sessions")
        return set(conn.execute(query).scalars())


# -- the glue ----------------------------------------------------------------------


GLUE = "# tokenauth glue"


def glue_lines() -> list[str]:
    """The lines of the example marked as glue, as docs/existing-app.md shows them: a
    line of code whose comment starts with the marker, or the line after a
    comment line ``# tokenauth glue (the next line)``."""
    lines: list[str] = []
    for path in sorted(EXAMPLE.glob("*.py")):
        source = path.read_text()
        physical = source.splitlines()
        tokens = tokenize.generate_tokens(io.StringIO(source).readline)
        for token in tokens:
            if token.type != tokenize.COMMENT or not token.string.startswith(GLUE):
                continue
            row = token.start[0]
            if token.string == f"{GLUE} (the next line)":
                lines.append(physical[row])
            else:
                assert physical[row - 1][: token.start[1]].strip(), token
                lines.append(physical[row - 1])
    return lines


def test_the_glue_is_at_most_sixteen_lines_each_a_whole_statement() -> None:
    """Ten for token auth, three more for the mail flows (Flask-Mail, its
    import, where the links point), at most three for the second factor."""
    lines = glue_lines()
    assert 0 < len(lines) <= 16, lines
    for line in lines:
        code = line.split("  #")[0].strip()
        if code.startswith("@"):  # a decorator: whole with a function under it
            code += "\ndef f(): pass"
        ast.parse(code)  # one physical line is one whole statement
