"""Wrong-password limits per account (flask_tokenauth/_lockout.py): strict
per (account, client address), loose per account, and device cookies that
keep the owner's own devices out of a stranger's reach."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from itsdangerous import URLSafeTimedSerializer

from flask_tokenauth import ConfigurationError
from flask_tokenauth._config import Settings

from .conftest import REDIS_URL, Auth, base_config, bearer

OWNER = "owner@example.com"
RIGHT = "correct horse battery"
WRONG = "wrong password"
#: Small limits keep the tests fast; the per-address endpoint limit is out
#: of the way.
LIMITS = {
    "TOKENAUTH_RATELIMIT_LOGIN": "1000/minute",
    "TOKENAUTH_RATELIMIT_LOGIN_FAILURES": "3/minute",
    "TOKENAUTH_RATELIMIT_ACCOUNT_FAILURES": "5/day",
}
DEVICE_COOKIE = "tokenauth_device"

_addresses = (f"198.51.{i // 250}.{i % 250 + 1}" for i in itertools.count())


def new_address() -> str:
    return next(_addresses)


@pytest.fixture(params=["memory", "redis"])
def storage(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """The limiter's storage: this process's memory, or the shared Redis
    (the limiter's keys, which hold the prefix in their middle, deleted
    afterwards)."""
    if request.param == "memory":
        yield {"TOKENAUTH_RATELIMIT_STORAGE_URI": "memory://"}
        return
    config: dict[str, str] = request.getfixturevalue("redis_config")
    yield dict(config, TOKENAUTH_RATELIMIT_STORAGE_URI=REDIS_URL)
    redis = request.getfixturevalue("redis_server")
    pattern = f"*{config['TOKENAUTH_REDIS_PREFIX']}*"
    keys = list(redis.scan_iter(match=pattern, count=1000))
    assert keys  # the counters were in Redis
    redis.delete(*keys)


@pytest.fixture
def app(make_app: Any, storage: dict[str, str]) -> Flask:
    app: Flask = make_app(**LIMITS, **storage)
    assert Auth(app.test_client()).register(OWNER, RIGHT).status_code == 201
    return app


def stranger(
    app: Flask, password: str = WRONG, email: str = OWNER, ip: str | None = None
) -> Any:
    """A login from a client never seen before, from an address of its own."""
    return Auth(app.test_client()).login(
        email, password, environ_base={"REMOTE_ADDR": ip or new_address()}
    )


def device(app: Flask) -> Auth:
    """A client that logged in to the owner's account before."""
    auth = Auth(app.test_client())
    assert auth.login(OWNER, RIGHT).status_code == 200
    assert auth.client.get_cookie(DEVICE_COOKIE, path="/api/auth") is not None
    return auth


def assert_429(response: Any) -> None:
    assert response.status_code == 429, response.get_json()
    assert response.get_json()["code"] == "RATE_LIMITED"
    assert 1 <= int(response.headers["Retry-After"]) <= 86_400


def spend_account_budget(app: Flask, email: str = OWNER) -> list[int]:
    """A stranger spread over many addresses guesses until refused."""
    return [stranger(app, email=email).status_code for _ in range(7)]


def test_a_stranger_cannot_lock_the_owner_out(app: Flask) -> None:
    owner = device(app)
    # Five wrong guesses, each from another address, spend the account's
    # budget for untrusted clients (the loose limit, 5/day here).
    assert spend_account_budget(app) == [401] * 5 + [429] * 2
    # Untrusted clients are now refused before the password is checked,
    # even with the right one ...
    assert_429(stranger(app, RIGHT))
    # ... but the owner's device, which logged in before, still logs in.
    for _ in range(3):
        response = owner.login(OWNER, RIGHT)
        assert response.status_code == 200, response.get_json()
    # And it can still change the password.
    token = owner.login(OWNER, RIGHT).get_json()["accessToken"]
    response = owner.client.post(
        "/api/auth/password",
        json={"currentPassword": RIGHT, "newPassword": "a new long password"},
        headers=bearer(token),
    )
    assert response.status_code == 200, response.get_json()


@pytest.mark.requirement("ASVS-5.0-6.3.1")
def test_the_strict_limit_still_stops_one_client(make_app: Any) -> None:
    app = make_app(**dict(LIMITS, TOKENAUTH_RATELIMIT_ACCOUNT_FAILURES="1000/day"))
    Auth(app.test_client()).register(OWNER, RIGHT)
    ip = new_address()
    statuses = [stranger(app, ip=ip).status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    assert_429(stranger(app, RIGHT, ip=ip))
    # Per (account, client): the same client may still try another account,
    # and another client this one.
    assert stranger(app, email="other@example.com", ip=ip).status_code == 401
    assert stranger(app, RIGHT).status_code == 200


def test_a_trusted_device_has_a_strict_budget_of_its_own(app: Flask) -> None:
    owner, other_device = device(app), device(app)
    assert [owner.login(OWNER, WRONG).status_code for _ in range(4)] == [
        401,
        401,
        401,
        429,
    ]
    assert_429(owner.login(OWNER, RIGHT))
    # The device's guesses spent neither another device's budget nor the
    # account's budget for new clients.
    assert other_device.login(OWNER, RIGHT).status_code == 200
    assert stranger(app, RIGHT).status_code == 200


def foreign_cookie(app: Flask) -> str:
    auth = Auth(app.test_client())
    assert auth.register("mallory@example.com", RIGHT).status_code == 201
    cookie = auth.client.get_cookie(DEVICE_COOKIE, path="/api/auth")
    assert cookie is not None
    return cookie.value


def forged_cookie(app: Flask) -> str:
    """A well-formed cookie signed with a key that is not the app's."""
    serializer = URLSafeTimedSerializer(
        b"not the refresh secret" * 3, salt=f"flask_tokenauth.device-cookie:{OWNER}"
    )
    return serializer.dumps("some-device")


@pytest.mark.parametrize(
    "make_cookie",
    [foreign_cookie, forged_cookie, lambda app: "garbage", lambda app: "x" * 3000],
    ids=["other-account", "forged", "garbage", "oversized"],
)
def test_no_exemption_without_a_device_cookie_of_the_account(
    app: Flask, make_cookie: Any
) -> None:
    cookie = make_cookie(app)
    spend_account_budget(app)
    client = app.test_client()
    client.set_cookie(DEVICE_COOKIE, cookie, path="/api/auth")
    assert_429(Auth(client).login(OWNER, RIGHT))


def test_a_tossed_cookie_does_not_hide_the_owners_own(app: Flask) -> None:
    """A cookie planted by someone else next to the owner's (cookie tossing,
    e.g. from a sibling subdomain) neither helps nor hurts."""
    owner = device(app)
    owner.client.set_cookie(DEVICE_COOKIE, foreign_cookie(app), path="/")
    spend_account_budget(app)
    assert owner.login(OWNER, RIGHT).status_code == 200


@pytest.mark.parametrize("single_address", [True, False])
def test_unknown_and_known_accounts_are_limited_alike(
    app: Flask, single_address: bool
) -> None:
    def attempts(email: str) -> list[tuple[int, str | None]]:
        ip = new_address()
        responses = [
            stranger(app, email=email, ip=ip if single_address else None)
            for _ in range(7)
        ]
        return [(r.status_code, r.get_json()["code"]) for r in responses]

    known, unknown = attempts(OWNER), attempts("nobody@example.com")
    assert known == unknown
    assert 429 in {status for status, _ in known}


@pytest.mark.parametrize(
    "body",
    [
        {"email": OWNER, "password": ""},
        {"email": OWNER},
        {"email": OWNER, "password": 5},
        {"email": OWNER, "password": "x" * 300},
        {"email": OWNER, "password": "nul\x00byte"},
        {"email": "", "password": WRONG},
    ],
)
def test_malformed_requests_spend_nothing(app: Flask, body: dict[str, Any]) -> None:
    ip = new_address()
    for _ in range(10):
        response = app.test_client().post(
            "/api/auth/login", json=body, environ_base={"REMOTE_ADDR": ip}
        )
        assert response.status_code == 400
    # The full strict budget is left for this address, and the account's.
    assert [stranger(app, ip=ip).status_code for _ in range(3)] == [401] * 3
    assert stranger(app, RIGHT).status_code == 200


def test_the_device_cookie(make_app: Any) -> None:
    app = make_app(url_prefix="/v2/auth")
    auth = Auth(app.test_client(), prefix="/v2/auth")
    first = auth.register(OWNER, RIGHT)
    [header] = [
        h
        for h in first.headers.getlist("Set-Cookie")
        if h.startswith(f"{DEVICE_COOKIE}=")
    ]
    for attribute in (
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/v2/auth",
        "Max-Age=31536000",
    ):
        assert attribute in header
    # It names no account; the account is bound by the signature.
    assert "owner" not in header.lower()
    value = header.split(";")[0].split("=", 1)[1]
    serializer = URLSafeTimedSerializer(b"x" * 32)
    device_id = serializer.loads_unsafe(value)[1]
    assert isinstance(device_id, str) and len(device_id) >= 22
    # A later login keeps the device id (and so its budget).
    auth.login(OWNER, RIGHT)
    cookie = auth.client.get_cookie(DEVICE_COOKIE, path="/v2/auth")
    assert cookie is not None
    assert serializer.loads_unsafe(cookie.value)[1] == device_id


def test_limits_off(make_app: Any) -> None:
    app = make_app(TOKENAUTH_RATELIMIT_ENABLED=False, **LIMITS)
    Auth(app.test_client()).register(OWNER, RIGHT)
    assert {stranger(app).status_code for _ in range(8)} == {401}
    assert stranger(app, RIGHT).status_code == 200


# -- /password shares the limits ------------------------------------------------


def change(app: Flask, token: str, current: str, ip: str | None = None) -> Any:
    return app.test_client().post(
        "/api/auth/password",
        json={"currentPassword": current, "newPassword": "taken over password"},
        headers=bearer(token),
        environ_base={"REMOTE_ADDR": ip or new_address()},
    )


@pytest.fixture
def stolen_token(app: Flask) -> Iterator[str]:
    """An access token of the owner's, in a thief's hands (no device cookie)."""
    yield Auth(app.test_client()).login(OWNER, RIGHT).get_json()["accessToken"]


def test_password_change_is_no_oracle(app: Flask, stolen_token: str) -> None:
    owner = device(app)
    statuses = [change(app, stolen_token, f"guess {i}").status_code for i in range(40)]
    assert statuses == [403] * 5 + [429] * 35
    # The 41st guess, from a 41st address, is the right one: refused unchecked.
    assert_429(change(app, stolen_token, RIGHT))
    # The password is unchanged, and the owner's device still logs in.
    assert owner.login(OWNER, RIGHT).status_code == 200


def test_password_change_and_login_share_the_count(
    app: Flask, stolen_token: str
) -> None:
    for _ in range(3):
        assert stranger(app).status_code == 401
    for _ in range(2):
        assert change(app, stolen_token, WRONG).status_code == 403
    assert_429(stranger(app, RIGHT))
    assert_429(change(app, stolen_token, RIGHT))


def test_password_change_per_client_limit(app: Flask, stolen_token: str) -> None:
    ip = new_address()
    statuses = [change(app, stolen_token, WRONG, ip).status_code for _ in range(4)]
    assert statuses == [403, 403, 403, 429]


# -- the tutorial's contract -------------------------------------------------------


@pytest.mark.parametrize("path", ["login", "register"])
@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"email": OWNER, "password": ""}, "INVALID_PASSWORD"),
        ({"email": "", "password": RIGHT}, "INVALID_EMAIL"),
        ({"email": "", "password": ""}, "INVALID_EMAIL"),
    ],
)
def test_empty_fields_are_400(
    app: Flask, path: str, body: dict[str, str], code: str
) -> None:
    response = app.test_client().post(f"/api/auth/{path}", json=body)
    assert response.status_code == 400
    assert response.get_json()["code"] == code


def test_empty_current_password_is_400(app: Flask, stolen_token: str) -> None:
    response = change(app, stolen_token, "")
    assert response.status_code == 400
    assert response.get_json()["code"] == "INVALID_PASSWORD"


# -- configuration -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"TOKENAUTH_DEVICE_COOKIE_NAME": "bad name"}, "DEVICE_COOKIE_NAME"),
        ({"TOKENAUTH_DEVICE_COOKIE_NAME": "refresh_token"}, "DEVICE_COOKIE_NAME"),
        ({"TOKENAUTH_DEVICE_COOKIE_NAME": "__Host-device"}, "DEVICE_COOKIE_NAME"),
        (
            {
                "TOKENAUTH_DEVICE_COOKIE_NAME": "__Secure-device",
                "TOKENAUTH_COOKIE_SECURE": False,
            },
            "DEVICE_COOKIE_NAME",
        ),
        ({"TOKENAUTH_RATELIMIT_ACCOUNT_FAILURES": "often"}, "ACCOUNT_FAILURES"),
    ],
)
def test_configuration_is_checked(config: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigurationError, match=key):
        Settings.from_mapping(base_config(**config))


@pytest.mark.requirement("NIST-800-63B-4-3.2.2")
def test_defaults() -> None:
    settings = Settings.from_mapping(base_config())
    assert settings.ratelimit_login_failures == "5/minute;20/hour"
    assert settings.ratelimit_account_failures == "100/day"
    assert settings.device_cookie_name == "tokenauth_device"


# -- the limiter's storage unreachable ----------------------------------------------


def test_redis_gone_falls_back_to_memory(make_app: Any, own_redis: Any) -> None:
    port = own_redis.connection_pool.connection_kwargs["port"]
    app = make_app(
        **LIMITS,
        TOKENAUTH_RATELIMIT_STORAGE_URI=f"redis://127.0.0.1:{port}/0",
        TOKENAUTH_REVOCATION="database",
    )
    Auth(app.test_client()).register(OWNER, RIGHT)
    owner = device(app)
    assert own_redis.keys("*password-failures*") == []
    assert stranger(app).status_code == 401
    assert own_redis.keys("*password-failures*")  # counted in Redis
    own_redis.shutdown(nosave=True)
    # Still limited (in this process's memory), never a 500.
    ip = new_address()
    assert [stranger(app, ip=ip).status_code for _ in range(4)] == [401] * 3 + [429]
    assert owner.login(OWNER, RIGHT).status_code == 200


class StorageLostMidRequest:
    """The limiter's strategy, whose storage fails for the password-failure
    counters only: as if Redis went away after the per-address check."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.real, name)

        def call(item: Any, *identifiers: str, **kwargs: Any) -> Any:
            if any("password-failures" in part for part in identifiers):
                raise ConnectionError("storage lost")
            return method(item, *identifiers, **kwargs)

        return call


def test_storage_lost_mid_request(app: Flask) -> None:
    limiter = app.extensions["tokenauth"].limiter
    limiter.primary = StorageLostMidRequest(limiter.primary)
    assert stranger(app).status_code == 401
    assert limiter.storage_down  # switched to memory, as Flask-Limiter does
    ip = new_address()
    assert [stranger(app, ip=ip).status_code for _ in range(4)] == [401] * 3 + [429]
