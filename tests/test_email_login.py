"""Sign in by email: ``POST /email-login`` mails a one-time link and a
6-digit code; ``POST /email-login/verify`` spends either one and starts an
ordinary session.  Each security claim is tried as an attack."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, Table, delete, event, select, update
from werkzeug.test import TestResponse

from flask_tokenauth import _linktokens, signals
from flask_tokenauth.models import EmailToken, User
from flask_tokenauth.testing import wait_for_mail

from .conftest import ACCESS_SECRET, Auth, bearer
from .smtp import SMTPServer, html_of, link_in, text_of, token_in

_tokens: Table = EmailToken.__table__  # type: ignore[assignment]
_users: Table = User.__table__  # type: ignore[assignment]

EMAIL = "user@example.com"
ATTEMPTS = 3
CONFIG: dict[str, Any] = {
    "TOKENAUTH_EMAIL_LOGIN_ENABLED": True,
    "TOKENAUTH_EMAIL_LOGIN_ATTEMPTS": ATTEMPTS,
    # Limits of their own are tested below; the other tests ask many times.
    "TOKENAUTH_RATELIMIT_MAIL": "1000/minute",
    "TOKENAUTH_RATELIMIT_MAIL_ADDRESS": "1000/minute",
}


class Mailbox:
    """What the real SMTP server process received, read once the app's
    outbox is idle (so a mail not there was not sent)."""

    def __init__(self, server: SMTPServer) -> None:
        self.server = server

    def to(self, address: str) -> list[EmailMessage]:
        wait_for_mail()
        return self.server.messages(address)

    def last(self, address: str = EMAIL) -> tuple[str, str]:
        """The token of the link and the code of the newest mail to
        ``address``."""
        mails = self.to(address)
        assert mails, f"no mail to {address}"
        code = re.search(r"^\s*(\d{6})\s*$", text_of(mails[-1]), re.M)
        assert code, text_of(mails[-1])
        return token_in(mails[-1]), code.group(1)


@pytest.fixture
def mailbox(smtp_server: SMTPServer) -> Mailbox:
    return Mailbox(smtp_server)


@pytest.fixture
def config(mail_config: dict[str, Any]) -> dict[str, Any]:
    return {**mail_config, **CONFIG}


@pytest.fixture
def app(make_app: Any, config: dict[str, Any]) -> Flask:
    return make_app(**config)  # type: ignore[no-any-return]


@pytest.fixture
def user(client: FlaskClient) -> int:
    """A registered user, and a client with no session of its own."""
    response = Auth(client).register()
    assert response.status_code == 201
    client.delete_cookie("refresh_token", path="/api/auth")
    return int(response.get_json()["user"]["id"])


def ask(client: FlaskClient, email: str = EMAIL) -> TestResponse:
    return client.post("/api/auth/email-login", json={"email": email})


def verify(client: FlaskClient, **body: Any) -> TestResponse:
    return client.post("/api/auth/email-login/verify", json=body)


def by_link(client: FlaskClient, token: str, code: str) -> TestResponse:
    return verify(client, token=token)


def by_code(
    client: FlaskClient, token: str, code: str, email: str = EMAIL
) -> TestResponse:
    return verify(client, email=email, code=code)


METHODS = [pytest.param(by_link, id="link"), pytest.param(by_code, id="code")]


def error(response: TestResponse) -> tuple[int, str]:
    return response.status_code, response.get_json()["code"]


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def row(engine: Engine, email: str = EMAIL) -> Any:
    with engine.begin() as conn:
        return conn.execute(
            select(_tokens)
            .where(_tokens.c.email == email)
            .order_by(_tokens.c.created_at.desc())
        ).first()


# -- it works, once ------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_a_link_or_a_code_starts_a_session_once(
    app: Flask,
    client: FlaskClient,
    user: int,
    mailbox: Mailbox,
    method: Callable[..., TestResponse],
) -> None:
    events: list[dict[str, Any]] = []
    signals.login_succeeded.connect(
        lambda _app, **kw: events.append(kw), app, weak=False
    )
    assert ask(client).status_code == 202
    token, code = mailbox.last()

    response = method(client, token, code)
    assert response.status_code == 200
    body = response.get_json()
    assert body["user"] == {"id": user, "email": EMAIL}
    claims = jwt.decode(
        body["accessToken"],
        ACCESS_SECRET,
        algorithms=["HS256"],
        audience=None,
        options={"verify_aud": False},
    )
    assert claims["sub"] == str(user) and claims["amr"] == ["email"]
    assert events[-1]["method"] == "email" and events[-1]["user_id"] == user
    # An ordinary session: the token works, and the cookie refreshes.
    me = client.get("/api/auth/sessions", headers=bearer(body["accessToken"]))
    assert me.status_code == 200
    r = Auth(client).refresh()
    assert r.status_code == 200, r.get_json()

    # Once: neither the link nor the code works again.
    assert error(by_link(client, token, code)) == (400, "LINK_INVALID")
    assert error(by_code(client, token, code)) == (400, "CODE_INVALID")


def test_the_mail_says_what_it_is(
    app: Flask, user: int, client: FlaskClient, mailbox: Mailbox
) -> None:
    requested: list[dict[str, Any]] = []
    signals.email_login_requested.connect(
        lambda _app, **kw: requested.append(kw), app, weak=False
    )
    # The link points at TOKENAUTH_LINK_BASE_URL, never at the Host sent.
    client.post(
        "/api/auth/email-login",
        json={"email": EMAIL},
        headers={"Host": "evil.example"},
    )
    (mail,) = mailbox.to(EMAIL)
    token, code = mailbox.last()
    assert mail["Subject"] == "Your sign-in link and code"  # no code on a locked screen
    assert link_in(mail) == f"http://app.test/email-login#token={token}"
    assert code in html_of(mail) and f"#token={token}" in html_of(mail)
    assert "10 minutes" in text_of(mail)
    assert requested == [{"user_id": user, "email": EMAIL}]
    assert token not in repr(requested) and code not in repr(requested)


def test_a_password_login_says_its_method(
    app: Flask, client: FlaskClient, user: int
) -> None:
    events: list[dict[str, Any]] = []
    signals.login_succeeded.connect(
        lambda _app, **kw: events.append(kw), app, weak=False
    )
    response = Auth(client).login()
    assert events[-1]["method"] == "password"
    claims = jwt.decode(
        response.get_json()["accessToken"],
        ACCESS_SECRET,
        algorithms=["HS256"],
        options={"verify_aud": False},
    )
    assert claims["amr"] == ["pwd"]  # since the second factor (issue 18)


def test_the_mailbox_is_proved(
    app: Flask, engine: Engine, client: FlaskClient, user: int, mailbox: Mailbox
) -> None:
    verified: list[dict[str, Any]] = []
    signals.email_verified.connect(
        lambda _app, **kw: verified.append(kw), app, weak=False
    )
    ask(client)
    _, code = mailbox.last()
    assert by_code(client, "", code).status_code == 200
    with engine.begin() as conn:
        assert conn.execute(select(_users.c.email_verified_at)).scalar() is not None
    assert verified == [{"user_id": user, "email": EMAIL}]


@pytest.mark.parametrize("mode", ["optional", "required"])
def test_an_unverified_user_signs_in_verified(
    make_app: Any, config: dict[str, Any], mailbox: Mailbox, mode: str
) -> None:
    """With verification on, the sign-in proves the address: the answer and
    the first access token already say so, and with ``required`` it is a
    way in for a user whose password login is refused until verified."""
    app = make_app(**{**config, "TOKENAUTH_EMAIL_VERIFICATION": mode})
    client = app.test_client()
    Auth(client).register()
    client.delete_cookie("refresh_token", path="/api/auth")
    if mode == "required":
        assert error(Auth(client).login()) == (403, "EMAIL_NOT_VERIFIED")
    ask(client)
    _, code = mailbox.last()
    response = by_code(client, "", code)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["user"]["emailVerified"] is True
    claims = jwt.decode(
        response.get_json()["accessToken"],
        ACCESS_SECRET,
        algorithms=["HS256"],
        options={"verify_aud": False},
    )
    assert claims["email_verified"] is True
    assert Auth(client).login().status_code == 200


@pytest.mark.parametrize("method", METHODS)
def test_proving_the_address_first_ends_the_earlier_sessions(
    app: Flask, mailbox: Mailbox, method: Callable[..., TestResponse]
) -> None:
    """Account pre-hijacking: whoever registered the address with their own
    password before its owner is signed out when the owner first proves the
    mailbox; a later email sign-in ends nobody's session."""
    attacker = app.test_client()
    registered = Auth(attacker).register()
    assert registered.status_code == 201
    stolen = registered.get_json()["accessToken"]
    revoked: list[dict[str, Any]] = []
    signals.session_revoked.connect(
        lambda _app, **kw: revoked.append(kw), app, weak=False
    )
    owner = app.test_client()
    ask(owner)
    response = method(owner, *mailbox.last())
    assert response.status_code == 200, response.get_json()
    access = response.get_json()["accessToken"]
    assert [r["reason"] for r in revoked] == ["email-verified"]
    assert attacker.get("/api/auth/sessions", headers=bearer(stolen)).status_code == 401
    assert Auth(attacker).refresh().status_code == 401
    # The owner's session is not touched, and nothing more ends later.
    sessions = owner.get("/api/auth/sessions", headers=bearer(access))
    assert sessions.status_code == 200 and len(sessions.get_json()["sessions"]) == 1
    other = app.test_client()
    ask(other)
    assert method(other, *mailbox.last()).status_code == 200
    assert len(revoked) == 1
    assert owner.get("/api/auth/sessions", headers=bearer(access)).status_code == 200


# -- refused -------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_expired(
    app: Flask,
    engine: Engine,
    client: FlaskClient,
    user: int,
    mailbox: Mailbox,
    method: Any,
) -> None:
    ask(client)
    token, code = mailbox.last()
    past = datetime.now(timezone.utc) - timedelta(seconds=1)
    with engine.begin() as conn:
        conn.execute(update(_tokens).values(expires_at=past))
    expected = "LINK_EXPIRED" if method is by_link else "CODE_INVALID"
    assert error(method(client, token, code)) == (400, expected)


def test_expires_after_ten_minutes_by_default(
    app: Flask, engine: Engine, client: FlaskClient, user: int, mailbox: Mailbox
) -> None:
    ask(client)
    mailbox.last()
    found = row(engine)
    life = found.expires_at - found.created_at
    assert life == timedelta(minutes=10)


@pytest.mark.requirement("ASVS-5.0-6.6.3")
def test_wrong_codes_kill_the_code(
    app: Flask, engine: Engine, client: FlaskClient, user: int, mailbox: Mailbox
) -> None:
    """Each wrong code is counted (committed, though the request is
    refused); at the limit the code dies, the right one with it."""
    ask(client)
    token, code = mailbox.last()
    for n in range(1, ATTEMPTS + 1):
        assert error(by_code(client, token, wrong(code))) == (400, "CODE_INVALID")
        assert row(engine).attempts == n
    assert error(by_code(client, token, code)) == (400, "CODE_INVALID")
    # The link of the same mail died with it.
    assert error(by_link(client, token, code)) == (400, "LINK_INVALID")


def test_a_code_survives_fewer_wrong_codes(
    app: Flask, client: FlaskClient, user: int, mailbox: Mailbox
) -> None:
    ask(client)
    token, code = mailbox.last()
    for _ in range(ATTEMPTS - 1):
        by_code(client, token, wrong(code))
    assert by_code(client, token, f"{code[:3]} {code[3:]}").status_code == 200


@pytest.mark.parametrize("method", METHODS)
def test_only_the_newest_mail_works(
    app: Flask, client: FlaskClient, user: int, mailbox: Mailbox, method: Any
) -> None:
    ask(client)
    old = mailbox.last()
    ask(client)
    new = mailbox.last()
    assert old != new
    assert method(client, *old).status_code == 400
    assert method(client, *new).status_code == 200


def test_a_code_is_only_good_for_its_own_address(
    app: Flask, client: FlaskClient, user: int, mailbox: Mailbox
) -> None:
    Auth(client).register("other@example.com")
    ask(client)
    ask(client, "other@example.com")
    _, mine = mailbox.last()
    _, theirs = mailbox.last("other@example.com")
    if mine == theirs:  # one chance in a million: nothing to test
        pytest.skip("both codes are the same")
    assert error(by_code(client, "", theirs)) == (400, "CODE_INVALID")
    assert error(by_code(client, "", mine, "other@example.com")) == (
        400,
        "CODE_INVALID",
    )


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),
        lambda t: t.split(".")[0],
        lambda t: "0" * 32 + "." + t.split(".")[1],
        lambda t: t + "x" * 200,
    ],
    ids=["secret", "no-secret", "other-id", "too-long"],
)
def test_a_tampered_link_is_refused(
    app: Flask, client: FlaskClient, user: int, mailbox: Mailbox, tamper: Any
) -> None:
    ask(client)
    token, code = mailbox.last()
    assert error(verify(client, token=tamper(token))) == (400, "LINK_INVALID")
    assert by_link(client, token, code).status_code == 200


def test_a_token_of_another_purpose_is_refused(
    app: Flask, engine: Engine, client: FlaskClient, user: int
) -> None:
    """A reset (or any other flow's) link of the same user signs nobody in."""
    settings = app.extensions["tokenauth"].settings
    with engine.begin() as conn:
        tokens = [
            _linktokens.issue(
                settings, conn, purpose, str(user), EMAIL, timedelta(hours=1)
            )
            for purpose in sorted(_linktokens.PURPOSES - {_linktokens.LOGIN})
        ]
    for issued in tokens:
        assert error(verify(client, token=issued.token)) == (400, "LINK_INVALID")


@pytest.mark.parametrize("method", METHODS)
def test_a_deleted_user_is_refused_as_a_wrong_code(
    app: Flask,
    engine: Engine,
    client: FlaskClient,
    user: int,
    mailbox: Mailbox,
    method: Any,
) -> None:
    ask(client)
    token, code = mailbox.last()
    with engine.begin() as conn:
        conn.execute(delete(_users))
    expected = "LINK_INVALID" if method is by_link else "CODE_INVALID"
    assert error(method(client, token, code)) == (400, expected)
    assert row(engine).used_at is not None  # spent all the same


def test_a_code_mailed_before_an_address_change_is_refused(
    app: Flask, engine: Engine, client: FlaskClient, user: int, mailbox: Mailbox
) -> None:
    ask(client)
    token, _ = mailbox.last()
    with engine.begin() as conn:
        conn.execute(update(_users).values(email="new@example.com"))
    assert error(by_link(client, token, "")) == (400, "LINK_INVALID")


@pytest.mark.parametrize(
    "body, expected",
    [
        ({}, (400, "VALIDATION_ERROR")),
        ({"token": 5}, (400, "VALIDATION_ERROR")),
        ({"email": EMAIL}, (400, "VALIDATION_ERROR")),
        ({"code": "123456"}, (400, "VALIDATION_ERROR")),
        ({"email": "not an address", "code": "123456"}, (400, "INVALID_EMAIL")),
        ({"email": EMAIL, "code": "12345"}, (400, "CODE_INVALID")),
        ({"email": EMAIL, "code": "abcdef"}, (400, "CODE_INVALID")),
        ({"email": EMAIL, "code": "١٢٣٤٥٦"}, (400, "CODE_INVALID")),
        ({"email": EMAIL, "code": "123456"}, (400, "CODE_INVALID")),
    ],
)
def test_malformed_requests(
    app: Flask,
    client: FlaskClient,
    user: int,
    body: dict[str, Any],
    expected: tuple[int, str],
) -> None:
    assert error(verify(client, **body)) == expected


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"json": {}}, (400, "VALIDATION_ERROR")),
        ({"json": {"email": ["a@example.com"]}}, (400, "VALIDATION_ERROR")),
        ({"json": {"email": "not an address"}}, (400, "INVALID_EMAIL")),
        ({"data": "email=a@example.com"}, (415, "UNSUPPORTED_MEDIA_TYPE")),
    ],
)
def test_malformed_requests_for_a_code(
    app: Flask, client: FlaskClient, mailbox: Mailbox, kwargs: Any, expected: Any
) -> None:
    """Refused for what the client sent, whatever the address; nothing is
    looked up or mailed."""
    assert error(client.post("/api/auth/email-login", **kwargs)) == expected


def test_off_by_default(make_app: Any, mail_config: dict[str, Any]) -> None:
    client = make_app(**mail_config).test_client()
    assert error(ask(client)) == (404, "NOT_FOUND")
    assert error(verify(client, token="x")) == (404, "NOT_FOUND")


@pytest.mark.requirement("ASVS-5.0-6.6.3")
def test_guesses_count_against_the_per_client_mail_limit(
    make_app: Any, config: dict[str, Any], mailbox: Mailbox
) -> None:
    """Beside the attempts of each code, a client's guesses (and its
    requests for codes) share ``TOKENAUTH_RATELIMIT_MAIL``."""
    app = make_app(**{**config, "TOKENAUTH_RATELIMIT_MAIL": "3/minute"})
    client = app.test_client()
    Auth(client).register()
    assert ask(client).status_code == 202
    _, code = mailbox.last()
    for _ in range(2):
        assert error(by_code(client, "", wrong(code))) == (400, "CODE_INVALID")
    limited = by_code(client, "", code)
    assert error(limited) == (429, "RATE_LIMITED") and "Retry-After" in limited.headers
    assert error(ask(client)) == (429, "RATE_LIMITED")


@pytest.mark.parametrize("mode", ["refuse-rcpt", "hang"])
def test_a_mail_server_that_refuses_or_hangs(
    make_app: Any,
    config: dict[str, Any],
    smtp_server: SMTPServer,
    mailbox: Mailbox,
    caplog: pytest.LogCaptureFixture,
    mode: str,
) -> None:
    """Answered as when the mail goes, ``mail_failed`` sent, no secret in
    the log; the next request for a code mails one that works."""
    app = make_app(**{**config, "TOKENAUTH_MAIL_TIMEOUT": "1s"})
    client = app.test_client()
    Auth(client).register()
    client.delete_cookie("refresh_token", path="/api/auth")
    answered = ask(client)
    mailbox.last()
    smtp_server.set_mode(mode)
    failed: list[dict[str, Any]] = []
    with signals.mail_failed.connected_to(lambda _, **kw: failed.append(kw), app):
        response = ask(client)
        wait_for_mail(app)
    assert (response.status_code, response.data) == (202, answered.data)
    assert [(f["template"], f["to"]) for f in failed] == [("email_login", EMAIL)]
    assert len(mailbox.to(EMAIL)) == 1
    assert not re.search(r"token=|\b\d{6}\b", caplog.text)

    smtp_server.set_mode("accept")
    ask(client)
    assert len(mailbox.to(EMAIL)) == 2
    assert by_link(client, *mailbox.last()).status_code == 200


# -- enumeration ---------------------------------------------------------------


def test_email_login_answers_the_same_for_any_address(
    make_app: Any, config: dict[str, Any], mailbox: Mailbox
) -> None:
    """Status, body and headers are the same for an account, an unknown
    address and an address whose limit is spent; only the account gets a
    mail, and the limited request sends nothing."""
    app = make_app(**{**config, "TOKENAUTH_RATELIMIT_MAIL_ADDRESS": "2/minute"})
    client = app.test_client()
    Auth(client).register()
    client.delete_cookie("refresh_token", path="/api/auth")
    limited: list[dict[str, Any]] = []
    signals.mail_limited.connect(lambda _app, **kw: limited.append(kw), app, weak=False)
    unknown: list[dict[str, Any]] = []
    signals.email_login_unknown.connect(
        lambda _app, **kw: unknown.append(kw), app, weak=False
    )

    def answer(email: str) -> tuple[int, bytes, list[tuple[str, str]]]:
        response = ask(client, email)
        headers = sorted((k, v) for k, v in response.headers.items() if k != "Date")
        return response.status_code, response.data, headers

    answers = {
        "account": answer(EMAIL),
        "unknown": answer("nobody@example.com"),
        "account, limited": (answer(EMAIL), answer(EMAIL))[1],
        "unknown, limited": (
            answer("nobody@example.com"),
            answer("nobody@example.com"),
        )[1],
    }
    assert len(set(map(repr, answers.values()))) == 1, answers
    assert answers["account"][0] == 202
    assert len(mailbox.to(EMAIL)) == 2 and mailbox.to("nobody@example.com") == []
    assert [event["email"] for event in limited] == [EMAIL, "nobody@example.com"]
    assert [event["email"] for event in unknown] == ["nobody@example.com"] * 2


def test_an_unknown_address_gets_a_decoy_code(
    app: Flask, engine: Engine, client: FlaskClient, mailbox: Mailbox
) -> None:
    """``/email-login/verify`` does the same work for an address with no
    account as for one with an account and a live code: its wrong code is
    checked and counted against a code nobody was mailed, so neither the
    answer nor its timing tells whether the address has an account."""
    ask(client, "nobody@example.com")
    wait_for_mail()
    decoy = row(engine, "nobody@example.com")
    assert decoy is not None and decoy.code_hash is not None
    assert not decoy.user_id.isdigit()
    for guess in ("000000", "999999"):
        assert error(by_code(client, "", guess, "nobody@example.com")) == (
            400,
            "CODE_INVALID",
        )
    assert row(engine, "nobody@example.com").attempts == 2


@pytest.mark.sqlite
def test_a_code_is_found_by_an_index_not_a_scan(
    app: Flask, engine: Engine, client: FlaskClient
) -> None:
    """The table holds every address's codes and decoys for a week: a
    guess must not read them all (a cheap way to load the database)."""
    ask(client, "nobody@example.com")
    wait_for_mail()
    statements: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, sql: str, params: Any, *_: Any) -> None:
        if "FROM tokenauth_email_tokens" in sql and sql.lstrip().startswith("SELECT"):
            statements.append((sql, params))

    event.listen(engine, "before_cursor_execute", record)
    try:
        by_code(client, "", "000000", "nobody@example.com")
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert statements
    with engine.connect() as conn:
        for sql, params in statements:
            plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params).all()
            assert not any(
                str(step[-1]).startswith("SCAN tokenauth_email_tokens") for step in plan
            ), plan


def test_purge_deletes_codes_and_decoys_a_week_past_expiry(
    app: Flask, engine: Engine, client: FlaskClient, user: int, mailbox: Mailbox
) -> None:
    """An address asked for once is never asked again: ``flask tokenauth
    purge`` deletes its rows (a decoy's or an account's) a week after they
    expired, and keeps the others."""
    for email in (EMAIL, "nobody@example.com", "gone@example.com"):
        ask(client, email)
    wait_for_mail()
    now = datetime.now(timezone.utc)
    with engine.begin() as conn:
        conn.execute(
            update(_tokens)
            .where(_tokens.c.email != "gone@example.com")
            .values(expires_at=now - timedelta(days=8))
        )
        conn.execute(
            update(_tokens)
            .where(_tokens.c.email == "gone@example.com")
            .values(expires_at=now - timedelta(days=6))
        )
    result = app.test_cli_runner().invoke(args=["tokenauth", "purge"])
    assert result.exit_code == 0, result.output
    with engine.begin() as conn:
        left = conn.execute(select(_tokens.c.email)).scalars().all()
    assert left == ["gone@example.com"]


# -- races (PostgreSQL: real row locks, real concurrent transactions) ---------


def concurrently(
    app: Flask, n: int, body: Callable[[int], dict[str, Any]]
) -> list[TestResponse]:
    barrier = threading.Barrier(n)
    responses: list[TestResponse] = []

    def worker(i: int) -> None:
        client = app.test_client()
        barrier.wait()
        responses.append(verify(client, **body(i)))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(responses) == n
    return responses


@pytest.mark.postgresql
@pytest.mark.requirement("ASVS-5.0-6.6.3")
def test_concurrent_wrong_codes_cannot_exceed_the_attempts(
    app: Flask, engine: Engine, client: FlaskClient, user: int, mailbox: Mailbox
) -> None:
    ask(client)
    token, code = mailbox.last()
    guesses = [f"{(int(code) + i) % 10**6:06d}" for i in range(1, 4 * ATTEMPTS + 1)]
    responses = concurrently(
        app, len(guesses), lambda i: {"email": EMAIL, "code": guesses[i]}
    )
    assert {error(r) for r in responses} == {(400, "CODE_INVALID")}
    found = row(engine)
    assert found.attempts == ATTEMPTS and found.used_at is not None
    assert error(by_code(client, token, code)) == (400, "CODE_INVALID")


@pytest.mark.postgresql
def test_concurrent_guesses_with_the_right_code_among_them(
    app: Flask, engine: Engine, client: FlaskClient, user: int, mailbox: Mailbox
) -> None:
    """Of many concurrent tries, the right code wins only while fewer than
    the allowed wrong ones were counted before it: never more than one
    success, and never after the code died."""
    ask(client)
    _, code = mailbox.last()
    tries = [wrong(code)] * (2 * ATTEMPTS) + [code]
    responses = concurrently(
        app, len(tries), lambda i: {"email": EMAIL, "code": tries[i]}
    )
    won = [r for r in responses if r.status_code == 200]
    assert len(won) <= 1
    found = row(engine)
    assert found.used_at is not None and found.attempts <= ATTEMPTS
    if won:
        assert found.attempts < ATTEMPTS


@pytest.mark.postgresql
@pytest.mark.parametrize("method", METHODS)
def test_concurrent_spends_of_the_right_code_one_wins(
    app: Flask, client: FlaskClient, user: int, mailbox: Mailbox, method: Any
) -> None:
    ask(client)
    token, code = mailbox.last()
    body = {"token": token} if method is by_link else {"email": EMAIL, "code": code}
    responses = concurrently(app, 8, lambda i: body)
    assert sorted(r.status_code for r in responses) == [200] + [400] * 7
