"""The one-time tokens every mail flow sends (verify an address, reset a
password, change an address, sign in by email), and nothing else: each flow
is a module of its own built on :func:`issue` and :func:`spend`.

A token is ``<id>.<secret>``: ``id`` (32 hex) finds its row of
``tokenauth_email_tokens``; the secret (256 bits) is never stored, only an
HMAC-SHA256 of it under a key derived from ``TOKENAUTH_REFRESH_SECRET`` that
also covers the purpose and the id, compared with
:func:`hmac.compare_digest`.  A database dump, a log of its statements or a
backup holds nothing a link can be rebuilt from, and a token of one purpose
is no token of another.

Why rows rather than a stateless signed token (Django's
``PasswordResetTokenGenerator``, itsdangerous): "single use" and "a newer
code supersedes an older one" need state anyway, a row lets support staff
and the CLI see and end what is outstanding, and spending it is one
conditional ``UPDATE`` (``... WHERE used_at IS NULL``) that two concurrent
requests cannot both win, on PostgreSQL as on SQLite.  What Django's design
gets from the password hash is kept: a token can be *bound* to a value when
issued (a reset, to the user's password fingerprint, see :mod:`._identity`)
and the flow refuses it when that value changed, by whatever route.

Spending happens in the caller's transaction, with the change the link
makes: if that change fails, the token is not spent either.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import cast
from urllib.parse import quote

from sqlalchemy import Connection, Table, and_, delete, select, update

from ._config import Settings
from .errors import CodeInvalid, LinkExpired, LinkInvalid
from .models import EmailToken

_tokens = cast(Table, EmailToken.__table__)

#: The purposes a token may have; a token of one is refused by the others.
VERIFY = "verify"
RESET = "reset"
CHANGE = "change"
CANCEL = "cancel"
LOGIN = "login"
PURPOSES = frozenset({VERIFY, RESET, CHANGE, CANCEL, LOGIN})

_ID_HEX = 32
#: ``token_urlsafe(32)``: 43 characters of base64url.
_SECRET_BYTES = 32
_MAX_TOKEN_LENGTH = 128
_CONTEXT = b"flask_tokenauth mail link\x00"
#: Rows past their expiry are deleted this long after it (a spent or
#: expired link still answers ``LINK_EXPIRED``/``LINK_INVALID`` until then).
_KEEP_EXPIRED = timedelta(days=7)


@dataclass(frozen=True)
class Issued:
    """A token just made: what goes in the mail."""

    #: ``<id>.<secret>``, for the link.
    token: str
    id: str
    expires_at: datetime
    #: The 6-digit code of a sign-in token, else ``None``.
    code: str | None = None


@dataclass(frozen=True)
class Spent:
    """A token just spent: what its row said."""

    id: str
    purpose: str
    #: The user's ``sub``.
    user_id: str
    email: str
    binding: str | None
    related_id: str | None


def _mac(settings: Settings, *parts: str) -> str:
    message = _CONTEXT + b"\x00".join(part.encode() for part in parts)
    return hmac.new(settings.refresh_secret, message, hashlib.sha256).hexdigest()


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _aware(moment: datetime) -> datetime:
    # SQLite gives naive datetimes back; ours are all UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def issue(
    settings: Settings,
    conn: Connection,
    purpose: str,
    sub: str,
    email: str,
    lifetime: timedelta,
    *,
    binding: str | None = None,
    related_id: str | None = None,
    code: bool = False,
    supersede: bool = False,
) -> Issued:
    """Make a token for ``purpose``, for user ``sub`` and address ``email``,
    valid for ``lifetime``, in ``conn`` (the caller's transaction).

    :param binding: a value the flow checks again when the token is spent.
    :param related_id: the id of a token issued with this one.
    :param code: also make a 6-digit code (a sign-in mail).
    :param supersede: spend the user's other live tokens of ``purpose``
        first: only the newest works.
    """
    if purpose not in PURPOSES:
        raise ValueError(f"no link purpose {purpose!r}")
    now = _now()
    token_id = secrets.token_hex(_ID_HEX // 2)
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    digits = f"{secrets.randbelow(10**6):06d}" if code else None
    # The user's long-expired rows go as new ones come: no sweeper needed.
    conn.execute(
        delete(_tokens).where(
            _tokens.c.user_id == sub, _tokens.c.expires_at < now - _KEEP_EXPIRED
        )
    )
    if supersede:
        revoke(conn, sub, [purpose], now=now)
    conn.execute(
        _tokens.insert().values(
            id=token_id,
            purpose=purpose,
            user_id=sub,
            email=email,
            secret_hash=_mac(settings, purpose, token_id, secret),
            binding=binding,
            code_hash=None
            if digits is None
            else _mac(settings, "code", token_id, digits),
            attempts=0,
            related_id=related_id,
            created_at=now,
            expires_at=now + lifetime,
            used_at=None,
        )
    )
    return Issued(f"{token_id}.{secret}", token_id, now + lifetime, digits)


def _split(token: object) -> tuple[str, str]:
    if not isinstance(token, str) or len(token) > _MAX_TOKEN_LENGTH:
        raise LinkInvalid()
    token_id, _, secret = token.partition(".")
    if len(token_id) != _ID_HEX or not secret:
        raise LinkInvalid()
    try:
        int(token_id, 16)
    except ValueError:
        raise LinkInvalid() from None
    return token_id.lower(), secret


def check(
    settings: Settings,
    conn: Connection,
    token: object,
    purpose: str,
    *,
    lock: bool = False,
) -> Spent:
    """What :func:`spend` checks, without spending: the live token's row.
    For a flow that must do something that cannot wait for our commit (a
    host store that commits a password on its own) before it spends.

    :param lock: hold the row until ``conn``'s transaction ends
        (``FOR UPDATE`` on PostgreSQL; SQLite has one writer anyway), so
        that a concurrent request with the same token waits here, then
        finds it spent.
    :raises LinkExpired: a genuine, unused token past its lifetime.
    :raises LinkInvalid: anything else that is not a live token of
        ``purpose`` (unknown, tampered, spent, another purpose).
    """
    token_id, secret = _split(token)
    query = select(_tokens).where(_tokens.c.id == token_id)
    row = conn.execute(query.with_for_update() if lock else query).first()
    # The MAC covers the purpose: a token of another purpose fails here too.
    expected = _mac(settings, purpose, token_id, secret)
    if row is None:
        hmac.compare_digest(expected, expected)  # the same work either way
        raise LinkInvalid()
    if not hmac.compare_digest(row.secret_hash, expected) or row.purpose != purpose:
        raise LinkInvalid()
    if row.used_at is not None:
        raise LinkInvalid()
    if _aware(row.expires_at) <= _now():
        raise LinkExpired()
    return Spent(
        row.id, row.purpose, row.user_id, row.email, row.binding, row.related_id
    )


def spend(settings: Settings, conn: Connection, token: object, purpose: str) -> Spent:
    """Spend ``token`` for ``purpose`` in ``conn``: the caller's
    transaction, which makes the change the link asks for.  Rolled back,
    the token is not spent.

    :raises LinkExpired: a genuine, unused token past its lifetime.
    :raises LinkInvalid: anything else that is not a live token of
        ``purpose`` (unknown, tampered, spent, another purpose).
    """
    spent = check(settings, conn, token, purpose)
    # The one statement two concurrent requests cannot both win.
    won = conn.execute(
        update(_tokens)
        .where(_tokens.c.id == spent.id, _tokens.c.used_at.is_(None))
        .values(used_at=_now())
    ).rowcount
    if won != 1:
        raise LinkInvalid()
    return spent


def spend_code(
    settings: Settings,
    conn: Connection,
    email: str,
    code: object,
    *,
    purpose: str = LOGIN,
    max_attempts: int,
) -> Spent | None:
    """Spend the live code of ``purpose`` mailed to ``email`` if ``code``
    is it.  A wrong code counts against the token's attempts (in ``conn``:
    the caller commits it even when it then refuses), and the token dies at
    ``max_attempts``.  Returns ``None`` for a wrong code (the caller
    commits, then raises :class:`CodeInvalid`).

    :raises CodeInvalid: no live code for ``email``.
    """
    if not isinstance(code, str) or len(code) != 6 or not code.isdigit():
        raise CodeInvalid()
    now = _now()
    row = conn.execute(
        select(_tokens)
        .where(
            _tokens.c.email == email,
            _tokens.c.purpose == purpose,
            _tokens.c.used_at.is_(None),
            _tokens.c.expires_at > now,
            _tokens.c.code_hash.is_not(None),
        )
        .order_by(_tokens.c.created_at.desc())
        .limit(1)
    ).first()
    if row is None:
        raise CodeInvalid()
    live = and_(
        _tokens.c.id == row.id,
        _tokens.c.used_at.is_(None),
        _tokens.c.attempts < max_attempts,
    )
    if not hmac.compare_digest(row.code_hash, _mac(settings, "code", row.id, code)):
        # Counted in one statement: concurrent guesses each count.
        conn.execute(
            update(_tokens).where(live).values(attempts=_tokens.c.attempts + 1)
        )
        conn.execute(
            update(_tokens)
            .where(_tokens.c.id == row.id, _tokens.c.attempts >= max_attempts)
            .values(used_at=now)
        )
        return None
    if conn.execute(update(_tokens).where(live).values(used_at=now)).rowcount != 1:
        raise CodeInvalid()
    return Spent(
        row.id, row.purpose, row.user_id, row.email, row.binding, row.related_id
    )


def revoke(
    conn: Connection,
    sub: str,
    purposes: list[str] | None = None,
    *,
    ids: list[str] | None = None,
    now: datetime | None = None,
) -> int:
    """Spend every live token of user ``sub`` (of ``purposes``, or with one
    of ``ids``; all by default): their links stop working.  Returns how
    many."""
    conditions = [_tokens.c.user_id == sub, _tokens.c.used_at.is_(None)]
    if purposes is not None:
        conditions.append(_tokens.c.purpose.in_(purposes))
    if ids is not None:
        conditions.append(_tokens.c.id.in_(ids))
    result = conn.execute(
        update(_tokens).where(*conditions).values(used_at=now or _now())
    )
    return int(result.rowcount)


def purge(conn: Connection, now: datetime | None = None) -> int:
    """Delete every row past its expiry by more than a week (spent or not,
    real or a decoy of :mod:`.views.email_login`); returns how many.  Run
    by ``flask tokenauth purge``: :func:`issue` only clears the rows of the
    user it issues for, and an address asked for once is never asked
    again."""
    cutoff = (now or _now()) - _KEEP_EXPIRED
    result = conn.execute(delete(_tokens).where(_tokens.c.expires_at < cutoff))
    return int(result.rowcount)


def link(settings: Settings, template: str, token: str) -> str:
    """The absolute URL of a link: ``TOKENAUTH_LINK_BASE_URL`` followed by
    ``template`` (a ``TOKENAUTH_*_URL`` setting) with the token in it."""
    assert settings.link_base_url is not None, "no link base URL: flows are off"
    return settings.link_base_url + template.replace(
        "{token}", quote(token, safe=".-_~")
    )
