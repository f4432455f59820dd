"""Rate limits on the auth endpoints, per IP and per account."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Blueprint, Flask

from flask_tokenauth import TokenAuth, auth_bp

from .conftest import PASSWORD, Auth, base_config


def limited(make_app: Any, **config: Any) -> Flask:
    return make_app(TOKENAUTH_RATELIMIT_ENABLED=True, **config)  # type: ignore[no-any-return]


def assert_429(response: Any) -> None:
    assert response.status_code == 429
    assert response.get_json() == {
        "error": "Too many requests, try again later",
        "code": "RATE_LIMITED",
    }
    assert 1 <= int(response.headers["Retry-After"]) <= 61


def post(app: Flask, view: str, ip: str = "127.0.0.1", **headers: str) -> Any:
    auth = Auth(app.test_client())
    kwargs: dict[str, Any] = {
        "headers": headers,
        "environ_overrides": {"REMOTE_ADDR": ip},
    }
    if view == "register":
        return auth.register(**kwargs)
    if view == "login":
        return auth.login(password="wrong password", **kwargs)
    return auth.refresh(**kwargs)


@pytest.mark.parametrize("view", ["register", "login", "refresh"])
@pytest.mark.requirement("ASVS-5.0-2.4.1", "ASVS-5.0-6.3.1")
def test_per_ip_limit(make_app: Any, view: str) -> None:
    app = limited(
        make_app,
        **{
            f"TOKENAUTH_RATELIMIT_{view.upper()}": "3/minute",
            "TOKENAUTH_RATELIMIT_LOGIN_FAILURES": "100/minute",
        },
    )
    statuses = [post(app, view).status_code for _ in range(3)]
    assert 429 not in statuses
    assert_429(post(app, view))
    # Another address has its own budget.
    assert post(app, view, ip="10.1.1.1").status_code != 429


@pytest.mark.requirement("ASVS-5.0-4.1.3")
def test_spoofed_forwarded_for_does_not_reset_the_limit(make_app: Any) -> None:
    app = limited(
        make_app,
        TOKENAUTH_RATELIMIT_LOGIN="3/minute",
        TOKENAUTH_RATELIMIT_LOGIN_FAILURES="100/minute",
    )
    for i in range(3):
        post(app, "login", **{"X-Forwarded-For": f"203.0.113.{i}"})
    assert_429(post(app, "login", **{"X-Forwarded-For": "203.0.113.99"}))


def test_trusted_proxy_uses_the_forwarded_address(make_app: Any) -> None:
    app = limited(
        make_app,
        TOKENAUTH_RATELIMIT_LOGIN="2/minute",
        TOKENAUTH_RATELIMIT_LOGIN_FAILURES="100/minute",
        TOKENAUTH_TRUSTED_PROXIES=1,
    )
    proxy = "10.0.0.1"
    # What the client sent (left) is ignored; what our proxy appended counts.
    for forged in ("1.1.1.1", "2.2.2.2"):
        post(app, "login", ip=proxy, **{"X-Forwarded-For": f"{forged}, 198.51.100.7"})
    assert_429(post(app, "login", ip=proxy, **{"X-Forwarded-For": "198.51.100.7"}))
    assert (
        post(app, "login", ip=proxy, **{"X-Forwarded-For": "198.51.100.8"}).status_code
        == 401
    )


@pytest.mark.requirement("ASVS-5.0-6.3.1", "NIST-800-63B-4-3.2.2")
def test_failed_logins_per_account(make_app: Any) -> None:
    """The loose per-account limit of clients not trusted for the account;
    the rest of the design is in test_lockout.py."""
    app = limited(
        make_app,
        TOKENAUTH_RATELIMIT_ACCOUNT_FAILURES="3/minute",
        TOKENAUTH_TRUSTED_PROXIES=1,
    )
    Auth(app.test_client()).register()
    Auth(app.test_client()).register("other@example.com")

    def attempt(i: int, password: str, email: str = "user@example.com") -> Any:
        return Auth(app.test_client()).login(
            f" {email.upper()} ",  # one account, whatever the spelling
            password,
            headers={"X-Forwarded-For": f"192.0.2.{i}"},  # a different IP each time
        )

    # Successes do not count.
    for i in range(5):
        assert attempt(i, PASSWORD).status_code == 200
    for i in range(3):
        assert attempt(10 + i, "wrong password").status_code == 401
    # Over the limit, even the right password is refused before it is checked.
    assert_429(attempt(20, PASSWORD))
    assert attempt(21, PASSWORD, "other@example.com").status_code == 200


def test_limits_can_be_turned_off(make_app: Any) -> None:
    app = make_app(
        TOKENAUTH_RATELIMIT_ENABLED=False, TOKENAUTH_RATELIMIT_LOGIN="1/minute"
    )
    assert [post(app, "login").status_code for _ in range(3)] == [401] * 3


def test_shared_redis_storage(make_app: Any, redis_config: dict[str, str]) -> None:
    """Two apps (think: two servers) on one Redis share the limit."""
    config = dict(
        redis_config,
        TOKENAUTH_RATELIMIT_LOGIN="4/minute",
        TOKENAUTH_RATELIMIT_LOGIN_FAILURES="100/minute",
    )
    one, two = limited(make_app, **config), limited(make_app, **config)
    assert one.extensions["tokenauth"].settings.ratelimit_storage_uri.startswith(
        "redis"
    )
    for app in (one, two, one, two):
        assert post(app, "login").status_code == 401
    assert_429(post(one, "login"))
    assert_429(post(two, "login"))


def test_other_routes_are_not_limited(make_app: Any) -> None:
    app = limited(make_app, TOKENAUTH_RATELIMIT_REFRESH="1/minute")
    client = app.test_client()
    assert [client.post("/api/auth/logout").status_code for _ in range(3)] == [200] * 3


def test_password_change_is_limited_like_a_login(make_app: Any) -> None:
    app = limited(make_app, TOKENAUTH_RATELIMIT_LOGIN="2/minute")
    token = Auth(app.test_client()).register().get_json()["accessToken"]
    client = app.test_client()
    body = {"currentPassword": "wrong password", "newPassword": "tram orbit velvet 42"}
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(2):
        assert (
            client.post("/api/auth/password", json=body, headers=headers).status_code
            == 403
        )
    assert_429(client.post("/api/auth/password", json=body, headers=headers))


def test_the_host_apps_own_routes_never_run_the_limiter(make_app: Any) -> None:
    """Limits are counted in our views: the host's routes run no hook of the
    limiter, neither app-wide nor moved onto the blueprint (nothing of ours
    is app-wide: see test_methods.py)."""
    app = limited(make_app, TOKENAUTH_RATELIMIT_LOGIN="1/minute")
    registries = (
        app.before_request_funcs,
        app.after_request_funcs,
        app.teardown_request_funcs,
    )
    app_wide = [getattr(f, "__name__", f) for r in registries for f in r.get(None, [])]
    assert app_wide == []
    anywhere = [f for r in registries for hooks in r.values() for f in hooks]
    assert not [f for f in anywhere if "limit" in repr(f).lower()]
    limiter = app.extensions["tokenauth"].limiter
    calls: list[str] = []
    original = limiter.run

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append("counted")
        return original(*args, **kwargs)

    limiter.run = spy
    app.add_url_rule("/home", "home", lambda: "home")
    assert app.test_client().get("/home").status_code == 200
    assert calls == []
    assert post(app, "login").status_code == 401
    assert "counted" in calls
    assert_429(post(app, "login"))


# -- the blueprint mounted elsewhere, or more than once --------------------------

#: How each case mounts the blueprint: the prefixes its login answers at.
MOUNTS = {
    "nested": ["/v1/auth"],
    "renamed": ["/second"],
    "twice": ["/api/auth", "/second"],
}


def mounted(engine: Any, how: str, **config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(base_config(TOKENAUTH_RATELIMIT_ENABLED=True, **config))
    TokenAuth(engine=engine).init_app(app)
    if how == "nested":
        parent = Blueprint("api", __name__, url_prefix="/v1")
        parent.register_blueprint(auth_bp, url_prefix="/auth")
        app.register_blueprint(parent)
    else:
        if how == "twice":
            app.register_blueprint(auth_bp)
        app.register_blueprint(auth_bp, name="second", url_prefix="/second")
    return app


def login_at(app: Flask, prefix: str, ip: str, **kwargs: Any) -> Any:
    return app.test_client().post(
        f"{prefix}/login",
        json={"email": kwargs.pop("email", "user@example.com"), "password": "wrong"},
        environ_overrides={"REMOTE_ADDR": ip},
        **kwargs,
    )


@pytest.mark.parametrize("how", list(MOUNTS))
def test_every_mount_is_limited_per_address(engine: Any, how: str) -> None:
    app = mounted(
        engine,
        how,
        TOKENAUTH_RATELIMIT_LOGIN="3/minute",
        TOKENAUTH_RATELIMIT_LOGIN_FAILURES="100/minute",
    )
    for prefix in MOUNTS[how]:
        ip = f"192.0.2.{len(prefix)}"
        assert [login_at(app, prefix, ip).status_code for _ in range(3)] == [401] * 3
        assert_429(login_at(app, prefix, ip))
        assert login_at(app, prefix, "198.51.100.1").status_code == 401


def test_mounts_share_the_per_address_counter(engine: Any) -> None:
    app = mounted(
        engine,
        "twice",
        TOKENAUTH_RATELIMIT_LOGIN="3/minute",
        TOKENAUTH_RATELIMIT_LOGIN_FAILURES="100/minute",
    )
    ip = "192.0.2.77"
    statuses = [login_at(app, p, ip).status_code for p in ("/api/auth", "/second")]
    assert [*statuses, login_at(app, "/second", ip).status_code] == [401] * 3
    assert_429(login_at(app, "/api/auth", ip))
    assert_429(login_at(app, "/second", ip))


def test_mounts_share_the_wrong_password_limit_per_account(engine: Any) -> None:
    app = mounted(
        engine,
        "twice",
        TOKENAUTH_RATELIMIT_ACCOUNT_FAILURES="3/minute",
        TOKENAUTH_RATELIMIT_LOGIN_FAILURES="100/minute",
    )
    Auth(app.test_client()).register()
    for i, prefix in enumerate(("/api/auth", "/second", "/api/auth")):
        assert login_at(app, prefix, f"192.0.2.{i}").status_code == 401
    # Another address, another mount: the account's budget is spent.
    assert_429(login_at(app, "/second", "192.0.2.50"))


def test_memory_counters_are_made_on_the_first_count(
    make_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``limits``' memory storage starts a timer thread when it is made: an
    app (a host test suite makes one per test) makes none until a limited
    request counts, then one, shared by every later count."""
    import flask_tokenauth._limiter as limiter_module

    made: list[object] = []

    class CountedMemoryStorage(limiter_module.MemoryStorage):
        def __init__(self) -> None:
            made.append(self)
            super().__init__()

    monkeypatch.setattr(limiter_module, "MemoryStorage", CountedMemoryStorage)
    app = limited(make_app, TOKENAUTH_RATELIMIT_LOGIN="2/minute")
    assert made == []
    assert [post(app, "login").status_code for _ in range(2)] == [401, 401]
    assert len(made) == 1
    assert_429(post(app, "login"))
    assert len(made) == 1
