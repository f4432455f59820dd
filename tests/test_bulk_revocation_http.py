"""An ORM bulk statement in one gunicorn worker ends the user's sessions in
the other worker too: two worker processes of a host app
(:mod:`tests.bulk_app`) on one database, the database revocation store, on
SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext

import pytest
import requests
from sqlalchemy import insert
from werkzeug.security import generate_password_hash

from flask_tokenauth._engine import make_engine
from flask_tokenauth._migrate import upgrade

from .bulk_app import Base, Member
from .conftest import (
    ACCESS_SECRET,
    PASSWORD,
    REFRESH_SECRET,
    bearer,
    service_missing,
    throwaway_database,
)
from .servers import (
    gunicorn_options,
    gunicorn_path,
    running_server,
    server_environment,
    wait_for,
)

pytestmark = pytest.mark.slow

TIMEOUT = 10.0


@pytest.fixture(params=["sqlite", "postgresql"])
def workers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Two workers, members ``alice`` and ``bob`` in the host's table."""
    gunicorn = gunicorn_path()
    if gunicorn is None:
        service_missing("gunicorn is not installed")
    assert gunicorn is not None
    workdir = tmp_path_factory.mktemp("bulk-workers")
    with (
        throwaway_database(request.getfixturevalue("postgres_url"), "tokenauth_bulk_")
        if request.param == "postgresql"
        else nullcontext(f"sqlite:///{workdir / 'tokenauth.sqlite3'}")
    ) as url:
        engine = make_engine(url, {})
        upgrade(engine)
        Base.metadata.create_all(engine)
        with engine.begin() as conn:
            password_hash = generate_password_hash(PASSWORD)
            conn.execute(
                insert(Member),
                [
                    {"username": name, "password_hash": password_hash}
                    for name in ("alice", "bob")
                ],
            )
        engine.dispose()
        env = server_environment(
            TOKENAUTH_ACCESS_SECRET=ACCESS_SECRET,
            TOKENAUTH_REFRESH_SECRET=REFRESH_SECRET,
            TOKENAUTH_DATABASE_URL=url,
            TOKENAUTH_REVOCATION="database",
            TOKENAUTH_REVOCATION_STALENESS="1",
            TOKENAUTH_REGISTER_ENABLED="false",
            TOKENAUTH_COOKIE_SECURE="false",
            TOKENAUTH_RATELIMIT_ENABLED="false",
        )
        command = [
            gunicorn,
            *gunicorn_options(gunicorn, threads=2, workers=2),
            "tests.bulk_app:create_app()",
        ]
        with running_server("bulk", command, env, workdir) as server:
            yield server.url


def login(url: str, username: str) -> tuple[str, str]:
    response = requests.post(
        f"{url}/api/auth/login",
        json={"username": username, "password": PASSWORD},
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    return response.json()["accessToken"], response.cookies["refresh_token"]


@pytest.mark.parametrize("how", ["delete", "disable"])
def test_a_bulk_statement_in_one_worker_reaches_the_other(
    workers: str, how: str
) -> None:
    """Each request is a new connection: the workers take turns as they
    accept, so polling reaches both."""
    token, cookie = login(workers, "alice")
    bob_token, _ = login(workers, "bob")

    def claims(access: str = token) -> requests.Response:
        return requests.get(
            f"{workers}/test/claims", headers=bearer(access), timeout=TIMEOUT
        )

    answered: set[str] = set()
    assert wait_for(
        lambda: (
            (r := claims()).status_code == 200
            and bool(answered.add(r.headers["X-Worker"]) or len(answered) == 2)
        )
    ), f"only worker(s) {answered} answered"

    done = requests.post(f"{workers}/test/{how}/alice", timeout=TIMEOUT)
    assert done.status_code == 200, done.text
    (other,) = answered - {done.headers["X-Worker"]}

    # The other worker refuses alice's token (its copy learns of the
    # revocation within its staleness bound)...
    assert wait_for(
        lambda: (
            (r := claims()).headers["X-Worker"] == other
            and (r.status_code, r.json().get("code")) == (401, "TOKEN_REVOKED")
        )
    )
    # ...and so does every worker, for good; bob's token still works there.
    for _ in range(4):
        response = claims()
        assert (response.status_code, response.json()["code"]) == (
            401,
            "TOKEN_REVOKED",
        )
        assert claims(bob_token).status_code == 200
    refreshed = requests.post(
        f"{workers}/api/auth/refresh",
        headers={"Cookie": f"refresh_token={cookie}"},
        timeout=TIMEOUT,
    )
    assert refreshed.status_code == 401, refreshed.text
