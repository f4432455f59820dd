"""The benchmark app still runs on this revision: ``make bench`` measures it
(not CI), so a change of the library that breaks it (a config key, the token
format its never-seen tokens copy) should fail here, in a second."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from benchmarks import worker
from benchmarks.app import create_app
from flask_tokenauth._state import get_state


def test_zero_config_app_accepts_its_never_seen_tokens(tmp_path: Path) -> None:
    app = create_app("default-sqlite", {"BENCH_SQLITE": f"sqlite:///{tmp_path}/b.db"})
    try:
        worker.cli(app, "db", "upgrade")
        worker.cli(app, "create-user", worker.EMAIL, "--password", worker.PASSWORD)
        client = app.test_client()
        body = {"email": worker.EMAIL, "password": worker.PASSWORD}
        login = client.post("/api/auth/login", json=body)
        assert login.status_code == 200, login.text
        worker.TOKENS["test"] = (login.json["accessToken"], None)
        token = worker.mint("test", 1)[0]
        assert token != login.json["accessToken"]
        for path in ("/bench/ours", "/bench/pyjwt"):
            headers = {"Authorization": f"Bearer {token}"}
            assert client.get(path, headers=headers).status_code == 200, path
        assert client.get("/bench/ours").status_code == 401
    finally:
        get_state(app).db.engine.dispose()


@pytest.mark.postgresql
def test_the_enumeration_benchmark_runs(engine: Engine) -> None:
    """``python -m benchmarks.enumeration`` on this revision, a few pairs
    (on the test database, emptied afterwards by the fixture)."""
    from benchmarks import enumeration

    url = engine.url.render_as_string(hide_password=False)
    control, measured = enumeration.forgot_password(url, 3)
    assert len(control) == len(measured) == 3
    assert len(enumeration.safe_register(url, 3)) == 3
