"""The fast paths keep every security property: the cache of verified
tokens still refuses expired, tampered and revoked tokens, and the local
copy of the Redis denylist sees revocations made by other processes."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import jwt
import pytest
from flask import Flask

from flask_tokenauth import _access, current_claims, login_required
from flask_tokenauth import globals as globals_module
from flask_tokenauth._mirror import RevocationMirror
from flask_tokenauth._revocation import RedisRevocation
from flask_tokenauth._sid import new_session_id

from .conftest import REDIS_URL, REFRESH_SECRET, Auth, bearer
from .servers import wait_for


def protect(app: Flask) -> Flask:
    @app.get("/me")
    @login_required
    def me() -> Any:
        return {"sub": current_claims["sub"]}

    return app


def test_cached_token_still_expires(
    make_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = protect(make_app(TOKENAUTH_REVOCATION="off"))
    token = Auth(app.test_client()).register().get_json()["accessToken"]
    client = app.test_client()
    assert client.get("/me", headers=bearer(token)).status_code == 200
    # Cached under the whole header it came in.
    key = bearer(token)["Authorization"]
    assert key in app.extensions["tokenauth"].access_tokens._cache
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    monkeypatch.setattr(_access.time, "time", lambda: exp + 1)
    response = client.get("/me", headers=bearer(token))
    assert response.get_json() == {"error": "Token expired", "code": "TOKEN_EXPIRED"}
    assert key not in app.extensions["tokenauth"].access_tokens._cache


def test_cached_token_still_checks_revocation(make_app: Any) -> None:
    app = protect(make_app(TOKENAUTH_REVOCATION="database"))
    auth = Auth(app.test_client())
    token = auth.register().get_json()["accessToken"]
    assert app.test_client().get("/me", headers=bearer(token)).status_code == 200
    auth.logout()
    response = app.test_client().get("/me", headers=bearer(token))
    assert response.get_json()["code"] == "TOKEN_REVOKED"


def test_tampered_twin_of_a_cached_token_is_refused(make_app: Any) -> None:
    app = protect(make_app(TOKENAUTH_REVOCATION="off"))
    token = Auth(app.test_client()).register().get_json()["accessToken"]
    client = app.test_client()
    assert client.get("/me", headers=bearer(token)).status_code == 200
    header, payload, signature = token.split(".")
    twin = (
        f"{header}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    )
    assert client.get("/me", headers=bearer(twin)).get_json()["code"] == "TOKEN_INVALID"


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ("Bearer {token} x", "TOKEN_INVALID"),
        ("Bearer {token}x", "TOKEN_INVALID"),
        ("Bearer {token}\x00", "TOKEN_INVALID"),
        ("Basic {token}", "TOKEN_MISSING"),
        ("Bearer", "TOKEN_INVALID"),
    ],
)
def test_a_cached_token_in_another_header_is_checked_afresh(
    make_app: Any, header: str, code: str
) -> None:
    """The cache is keyed by the whole header: a header that is not exactly
    one cached (even one carrying a cached token) is parsed and verified as
    if nothing were cached; another spelling of a valid one is accepted."""
    app = protect(make_app(TOKENAUTH_REVOCATION="off"))
    token = Auth(app.test_client()).register().get_json()["accessToken"]
    client = app.test_client()
    assert client.get("/me", headers=bearer(token)).status_code == 200
    odd = {"Authorization": header.format(token=token)}
    assert client.get("/me", headers=odd).get_json()["code"] == code
    for spelling in (f"bearer {token}", f"BEARER   {token}  "):
        response = client.get("/me", headers={"Authorization": spelling})
        assert response.status_code == 200, response.get_json()
    assert client.get("/me", headers=odd).get_json()["code"] == code


def test_a_warm_header_is_not_parsed_again(
    make_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cache is found by the header: the header of a token verified
    before is not parsed again (nor its token verified), only its ``exp``
    and the revocation store are checked."""
    app = protect(make_app(TOKENAUTH_REVOCATION="off"))
    token = Auth(app.test_client()).register().get_json()["accessToken"]
    parsed: list[str] = []
    parse = globals_module.bearer_token
    monkeypatch.setattr(
        globals_module,
        "bearer_token",
        lambda *args: parsed.append("x") or parse(*args),
    )
    client = app.test_client()
    for _ in range(3):
        assert client.get("/me", headers=bearer(token)).status_code == 200
    assert parsed == ["x"]


def test_cache_is_bounded_and_keeps_only_valid_tokens(make_app: Any) -> None:
    app = protect(make_app(TOKENAUTH_REVOCATION="off", TOKENAUTH_TOKEN_CACHE_SIZE=3))
    state = app.extensions["tokenauth"]
    client = app.test_client()
    with app.app_context():
        tokens = [
            state.access_tokens.issue(1, new_session_id(REFRESH_SECRET.encode(), 1))
            for _ in range(10)
        ]
    for token in tokens:
        assert client.get("/me", headers=bearer(token)).status_code == 200
        client.get("/me", headers=bearer(token + "x"))
    assert len(state.access_tokens._cache) == 3
    assert list(state.access_tokens._cache) == [f"Bearer {t}" for t in tokens[-3:]]


def test_cache_can_be_turned_off(make_app: Any) -> None:
    app = protect(make_app(TOKENAUTH_REVOCATION="off", TOKENAUTH_TOKEN_CACHE_SIZE=0))
    token = Auth(app.test_client()).register().get_json()["accessToken"]
    assert app.test_client().get("/me", headers=bearer(token)).status_code == 200
    assert app.extensions["tokenauth"].access_tokens._cache == {}


def redis_store(prefix: str) -> RedisRevocation:
    return RedisRevocation.from_url(REDIS_URL, prefix, timedelta(minutes=15))


def test_mirror_sees_other_processes_revocations(redis_config: dict[str, str]) -> None:
    prefix = redis_config["TOKENAUTH_REDIS_PREFIX"]
    before = redis_store(prefix)
    before.revoke_sessions(["revoked-before-start"])
    here, elsewhere = redis_store(prefix), redis_store(prefix)
    mirror = here._mirror
    assert mirror is not None
    assert wait_for(lambda: mirror.lookup("x", "1")[2])
    # Loaded at start...
    assert mirror.lookup("revoked-before-start", "1") == (True, None, True)
    # ...and kept current by what other processes publish.
    now = datetime.now(timezone.utc)
    elsewhere.revoke_sessions(["s2"])
    elsewhere.revoke_user(7, at=now)
    expected = (True, int(now.timestamp()), True)
    assert wait_for(lambda: mirror.lookup("s2", "7") == expected, 2)


def test_mirror_answers_without_asking_redis(
    redis_config: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = redis_store(redis_config["TOKENAUTH_REDIS_PREFIX"])
    assert store._mirror is not None
    mirror: RevocationMirror = store._mirror
    claims = {"sid": "live", "sub": "1", "iat": int(time.time())}
    store.check(claims)  # starts the subscription
    assert wait_for(lambda: mirror.lookup("live", "1")[2])
    store.revoke_sessions(["gone"])

    def no_round_trips(*args: Any) -> Any:
        raise AssertionError("asked Redis")

    monkeypatch.setattr(store._redis, "mget", no_round_trips)
    store.check(claims)
    with pytest.raises(Exception) as revoked:
        store.check(dict(claims, sid="gone"))
    assert getattr(revoked.value, "error_code", "") == "TOKEN_REVOKED"


def test_stale_mirror_falls_back_to_redis(redis_config: dict[str, str]) -> None:
    store = redis_store(redis_config["TOKENAUTH_REDIS_PREFIX"])
    assert store._mirror is not None
    # Never current: as if the subscription were down.
    store._mirror.lookup = lambda *args: (False, None, False)  # type: ignore[method-assign]
    redis_store(redis_config["TOKENAUTH_REDIS_PREFIX"]).revoke_sessions(["elsewhere"])
    with pytest.raises(Exception) as revoked:
        store.check({"sid": "elsewhere", "sub": "1", "iat": 0})
    assert getattr(revoked.value, "error_code", "") == "TOKEN_REVOKED"


FORK_CHILD = """
import os
from flask_tokenauth import _process
parent = _process.pid
assert parent == os.getpid()
read, write = os.pipe()
child = os.fork()
if child == 0:
    os.write(write, f"{_process.pid} {os.getpid()} {parent}".encode())
    os._exit(0)
os.waitpid(child, 0)
print(os.read(read, 100).decode())
"""


def test_the_process_id_follows_forks_without_a_system_call() -> None:
    """The copies compare their pid with ``_process.pid`` on every request
    (``os.getpid()`` is a system call): it must be the child's own after a
    fork, or a forked worker would use its parent's dead listener thread.
    Forked in a subprocess of its own: this one runs threads."""
    result = subprocess.run(
        [sys.executable, "-c", FORK_CHILD],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    seen, actual, parent = result.stdout.split()
    assert seen == actual != parent
