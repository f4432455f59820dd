"""In-process measurements, run in one worker process per code version.

``run.py`` starts a process per tree (the working tree, and with ``--rev``
a snapshot of the old revision first on ``sys.path``) and calls these
functions in it; the module state below lives in that process.  Requests
are direct WSGI calls: the whole Flask request cycle, no sockets, no test
client.  Tokens are made through public means only: a session from
``flask_tokenauth.testing.start_session``, then copies of its access token
re-signed with a new ``jti`` (a never-seen token each).
"""

from __future__ import annotations

import gc
import io
import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import jwt
from werkzeug.test import EnvironBuilder

from .app import ACCESS_SECRET, CHECKS, CONFIGS, Tutorial
from .app import create_app as _create_app

EMAIL, PASSWORD = "bench@example.com", "correct horse battery staple"
APPS: dict[str, Any] = {}  # by configuration, and by algorithm (revocation off)
TOKENS: dict[str, tuple[str, Any]] = {}  # app name -> (a token, signing key)
#: App name -> a token of an ``aal`` 2 session (a plain one before issue 18).
AAL2_TOKENS: dict[str, str] = {}
LOOPS: dict[str, Callable[[int], None]] = {}
ENV: dict[str, str] = {}
USER: list[int] = []  # the user's id


def cli(app: Any, *args: str) -> str:
    result = app.test_cli_runner().invoke(args=["tokenauth", *args])
    if result.exit_code:
        raise RuntimeError(f"flask tokenauth {' '.join(args[:2])}: {result.output}")
    return str(result.output)


def prepare(env: dict[str, str]) -> str:
    """Migrate both databases with this tree's own command, create the user,
    build every app; returns the library's path (for the report)."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    import flask_tokenauth
    from flask_tokenauth.testing import start_session

    ENV.update(env)
    for config in CONFIGS:
        if config != "redis" or env.get("BENCH_REDIS"):
            APPS[config] = _create_app(config, env)
    for config in ("default-sqlite", "default-pg"):
        cli(APPS[config], "db", "upgrade")
        try:  # a fresh worker of the same tree (memory) finds the user there
            cli(APPS[config], "create-user", EMAIL, "--password", PASSWORD)
        except RuntimeError as e:
            if "exists" not in str(e):
                raise
    keys = {
        "EdDSA": ed25519.Ed25519PrivateKey.generate(),
        "ES256": ec.generate_private_key(ec.SECP256R1()),
        "RS256": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    }
    for algorithm, key in keys.items():
        APPS[algorithm] = _create_app("off", env, TOKENAUTH_SIGNING_KEY=key)
    APPS["HS256"] = APPS["off"]
    body = {"email": EMAIL, "password": PASSWORD}
    login = APPS["default-pg"].test_client().post("/api/auth/login", json=body)
    if login.status_code != 200:
        raise RuntimeError(f"login answered {login.status_code}: {login.text}")
    user = jwt.decode(login.json["accessToken"], options={"verify_signature": False})
    USER.append(int(user["sub"]))
    for name, app in APPS.items():
        TOKENS[name] = (start_session(USER[0], app).access_token, keys.get(name))
        try:  # a session after a second factor, where the revision has them
            session = start_session(USER[0], app, aal=2)  # type: ignore[call-arg,unused-ignore]
        except TypeError:
            session = start_session(USER[0], app)
        AAL2_TOKENS[name] = session.access_token
    Tutorial(env["BENCH_PG"]).issue(0)  # its table
    return str(flask_tokenauth.__file__).rsplit("/", 2)[0]


def minter(name: str) -> Callable[[], str]:
    """``jwt.encode`` of a never-seen copy of app ``name``'s token (a new
    ``jti``), with a loaded key."""
    token, key = TOKENS[name]
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    algorithm, key = header.pop("alg"), key or ACCESS_SECRET
    return lambda: jwt.encode(
        {**claims, "jti": uuid.uuid4().hex}, key, algorithm, header
    )


def mint(name: str, count: int) -> list[str]:
    make = minter(name)
    return [make() for _ in range(count)]


def wsgi_loop(app: Any, path: str, tokens: Iterator[str]) -> Callable[[int], None]:
    base = EnvironBuilder(path=path).get_environ()
    failed: list[str] = []

    def start_response(status: str, headers: Any, exc: Any = None) -> None:
        if status[:3] != "200":
            failed.append(status)

    def run(n: int) -> None:
        for _ in range(n):
            env = base.copy()
            env["wsgi.input"] = io.BytesIO()
            env["HTTP_AUTHORIZATION"] = "Bearer " + next(tokens)
            result = app(env, start_response)
            for _chunk in result:
                pass
            result.close()
        if failed:
            raise RuntimeError(f"{path}: answered {failed[0]}")

    return run


def login_loop(app: Any, body: dict[str, Any], status: int) -> Callable[[int], None]:
    """``POST /api/auth/login`` with ``body``, through the app's WSGI callable
    as a server calls it; every answer must be ``status``."""
    raw = json.dumps(body).encode()
    base = EnvironBuilder(
        path="/api/auth/login", method="POST", content_type="application/json"
    ).get_environ()
    base["CONTENT_LENGTH"] = str(len(raw))
    failed: list[str] = []

    def start_response(status_line: str, headers: Any, exc: Any = None) -> None:
        if int(status_line[:3]) != status:
            failed.append(status_line)

    def run(n: int) -> None:
        for _ in range(n):
            env = base.copy()
            env["wsgi.input"] = io.BytesIO(raw)
            result = app(env, start_response)
            for _chunk in result:
                pass
            result.close()
        if failed:
            raise RuntimeError(f"/api/auth/login: answered {failed[0]}")

    return run


def call_loop(call: Callable[[], Any]) -> Callable[[int], None]:
    def run(n: int) -> None:
        for _ in range(n):
            call()

    return run


def loop(variant: str, count: int) -> Callable[[int], None] | None:
    """A variant ``"<app> <kind>"``: ``bare``, ``warm`` (one token),
    ``login`` (``POST /api/auth/login``, right password), ``loginbad``
    (the same without a password: a 400 from reading the body),
    ``aal2`` (one token of a session after a second factor, on an
    ``@login_required(aal=2)`` view), ``cold``
    (a never-seen token each), ``pyjwt``, ``fjwt``, ``decode`` (PyJWT
    alone), ``encode`` (PyJWT alone), ``issue`` and ``verify`` (ours,
    internal: None when this revision has no such method)."""
    name, kind = variant.split()
    app = APPS[name]
    if kind == "login":  # a right password: bcrypt, a session row, tokens
        return login_loop(app, {"email": EMAIL, "password": PASSWORD}, 200)
    if kind == "loginbad":  # no password: refused while reading the body
        return login_loop(app, {"email": EMAIL}, 400)
    if kind == "aal2":  # warm, an aal 2 token on an @login_required(aal=2) view
        return wsgi_loop(app, "/bench/aal2", itertools.repeat(AAL2_TOKENS[name]))
    if kind in ("bare", "warm"):
        path = "/bench/bare" if kind == "bare" else "/bench/ours"
        return wsgi_loop(app, path, itertools.repeat(TOKENS[name][0]))
    if kind in ("cold", "pyjwt"):
        path = "/bench/ours" if kind == "cold" else "/bench/pyjwt"
        return wsgi_loop(app, path, iter(mint(name, count)))
    if kind == "fjwt":
        return wsgi_loop(app, "/bench/fjwt", iter(fjwt_tokens(False, count)))
    if kind == "encode":
        return call_loop(minter(name))
    tokens = iter(mint(name, count))
    if kind == "decode":
        token, key = TOKENS[name]
        verify = key.public_key() if key is not None else ACCESS_SECRET
        algs = [jwt.get_unverified_header(token)["alg"]]
        return call_loop(lambda: jwt.decode(next(tokens), verify, algs, **CHECKS))
    claims = jwt.decode(TOKENS[name][0], options={"verify_signature": False})
    try:  # internal: ``issue`` a token, ``verify`` a never-seen one
        from flask_tokenauth._state import get_state

        call = getattr(get_state(app).access_tokens, kind)
    except (ImportError, AttributeError):
        return None
    if kind == "verify":
        return call_loop(lambda: call(next(tokens)))
    return call_loop(lambda: call(int(claims["sub"]), claims["sid"]))


def setup(variants: list[str], count: int, warmup: int) -> list[str]:
    """Build the loops (``count`` tokens each) and warm them up; returns the
    variants this revision cannot run."""
    missing = []
    for variant in variants:
        made = loop(variant, count + warmup)
        if made is None:
            missing.append(variant)
        else:
            LOOPS[variant] = made
            made(warmup)
    return missing


def timed(variant: str, n: int, clock: str = "wall") -> float:
    """Microseconds per call of ``n`` calls; ``clock="cpu"``: in this
    thread's CPU time (see ``--clock`` in README.md)."""
    now = time.thread_time if clock == "cpu" else time.perf_counter
    gc.collect()
    start = now()
    LOOPS[variant](n)
    return (now() - start) / n * 1e6


def refresh_chain(app: Any, path: str, token: str) -> Callable[[], None]:
    """One rotation per call, each with the cookie the previous one set."""
    client, chain = app.test_client(use_cookies=False), [token]

    def rotate() -> None:
        response = client.post(path, headers={"Cookie": f"refresh_token={chain[0]}"})
        cookie = response.headers.get("Set-Cookie", "")
        if response.status_code != 200 or "refresh_token=" not in cookie:
            raise RuntimeError(f"{path}: {response.status_code} {response.text}")
        chain[0] = cookie.split("refresh_token=", 1)[1].split(";", 1)[0]

    return rotate


def refresh_tokens(kind: str, count: int, app: Any = None) -> list[str]:
    """First refresh tokens of ``count`` new sessions: ``ours`` (default-pg),
    ``tutorial`` (its own table), ``fjwt`` (Flask-JWT-Extended's)."""
    from flask_tokenauth.testing import start_session

    if kind == "tutorial":
        return Tutorial(ENV["BENCH_PG"]).issue(count)
    if kind == "fjwt":
        return fjwt_tokens(True, count)
    app = app or APPS["default-pg"]
    return [start_session(USER[0], app).refresh_token for _ in range(count)]


def fjwt_tokens(refresh: bool, count: int) -> list[str]:
    from flask_jwt_extended import create_access_token, create_refresh_token

    with APPS["off"].app_context():
        make = create_refresh_token if refresh else create_access_token
        return [make(identity="1") for _ in range(count)]


def round_trips(count: int) -> dict[str, list[Any]]:
    """Database round trips per rotation, ours and the tutorial's, counted at
    the wire by a proxy in front of PostgreSQL."""
    from sqlalchemy import make_url

    from .pgproxy import RoundTripCounter

    url = make_url(ENV["BENCH_PG"])
    out: dict[str, list[Any]] = {}
    with RoundTripCounter(url.host or "127.0.0.1", url.port or 5432) as proxy:
        query = {**url.query, "sslmode": "disable", "gssencmode": "disable"}
        proxied = url.set(host="127.0.0.1", port=proxy.port, query=query)
        env = {**ENV, "BENCH_PG": proxied.render_as_string(hide_password=False)}
        app = _create_app("default-pg", env)
        ours = refresh_tokens("ours", 1, app)[0]
        tutorial = Tutorial(env["BENCH_PG"]).issue(1)[0]
        chains = {
            "ours": refresh_chain(app, "/api/auth/refresh", ours),
            "tutorial": refresh_chain(app, "/bench/tutorial/refresh", tutorial),
        }
        for name, rotate in chains.items():
            counts, sequence = [], []
            for i in range(count + 3):  # 3 of warm-up
                mark = len(proxy.requests)
                rotate()
                sequence = proxy.requests[mark:]
                if i >= 3:
                    counts.append(len(sequence))
            out[name] = [counts, sequence]
    return out


def rss_mb() -> float:
    import os

    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def memory(config: str, requests: int, refreshes: int) -> dict[str, list[float]]:
    """RSS (MB) after a warm-up of a tenth (requests: 5,000 at least, more than
    the default token cache holds), every twentieth, and at the end of
    ``requests`` protected requests each with a new token, then of a chain of
    ``refreshes`` rotations.  Run it in a fresh worker."""
    app = APPS[config]

    def protected(n: int) -> None:
        for start in range(0, n, 1000):
            batch = min(1000, n - start)
            wsgi_loop(app, "/bench/ours", iter(mint(config, batch)))(batch)

    token = refresh_tokens("ours", 1, app)[0]
    rotate = refresh_chain(app, "/api/auth/refresh", token)
    out = {}
    for phase, action, count in (
        ("requests", protected, requests),
        ("refreshes", lambda n: [rotate() for _ in range(n)], refreshes),
    ):
        warmup = max(count // 10, 5000 if phase == "requests" else 0)  # a full cache
        action(warmup)
        gc.collect()
        samples = [rss_mb()]
        for _ in range(20):
            action(max((count - warmup) // 20, 1))
            samples.append(rss_mb())
        gc.collect()
        out[phase] = [*samples, rss_mb()]
    return out
