"""Reading the refresh cookie when a request carries several of its name.

A browser sends one ``name=value`` pair per stored cookie that matches the
request, so a request carries several refresh cookies when another one was
*tossed* into the browser's jar: set by a sibling subdomain with
``Domain=.example.com``, or over plain http by a network attacker before
HSTS, typically with a more specific ``Path`` so that the browser sends it
first.  The server cannot tell from the ``Cookie`` header which one it set;
it can tell which values are live tokens of its own.

- Values that are not ours are ignored, and never get our cookie cleared:
  otherwise a tossed garbage value would log the victim out on every load.
- One live token of ours among them: it is the one to refresh with, unless
  the page names another session (below): then it is handled as two
  unnamed live ones are, as the page's own session has ended.
- Two or more live tokens (of different sessions, as a family has one live
  token at a time): one is probably an attacker's own session, planted to
  sign the victim's page into the attacker's account (login CSRF).  The page
  itself can say which session it holds (the browser client sends its
  session id, ``?session=``, a request :func:`refuse_cross_site
  <._origin.refuse_cross_site>` has already confined to our own origin):
  that one is used, and the others' sessions are revoked.  Without that
  word, neither is used; both sessions are revoked, so that a planted
  cookie we cannot clear is dead from then on, and the answer is
  ``REFRESH_TOKEN_AMBIGUOUS``: the user logs in again.

Whenever a request carries several values, the answer clears what it can
(:func:`clear_refresh_cookies`): the cookie's name at every path and domain
from which a browser would send it to ``/refresh``, our own cookie spared
when the answer sets it anew.  A login or registration does the same, so a
new login gets rid of a planted cookie.

A cookie name with the ``__Host-`` prefix (see ``TOKENAUTH_COOKIE_NAME``)
keeps other hosts from tossing a cookie of that name in the first place.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Response, request
from werkzeug.http import dump_cookie

from ._config import Settings
from ._headers import cookie_path
from ._refresh import KnownToken
from ._state import TokenAuthState
from .errors import RefreshTokenAmbiguous, RefreshTokenInvalid

#: More values than this are not a browser's jar but a crafted header: a
#: refresh refuses them unread, a logout looks at the first ones only, so no
#: query is of unbounded size.
MAX_VALUES = 16


def refresh_cookie_values(state: TokenAuthState) -> list[str]:
    """Every distinct non-empty value of the refresh cookie, in the order of
    the ``Cookie`` header.  An empty value is nothing we ever set (clearing
    deletes the cookie), so it is skipped rather than read as "no token"."""
    values = request.cookies.getlist(state.settings.cookie_name)
    return list(dict.fromkeys(value for value in values if value))


def _known(state: TokenAuthState, values: list[str]) -> dict[str, KnownToken]:
    """The values that are tokens of ours, in the order sent."""
    with state.db.begin() as conn:
        found = state.refresh_tokens.known(conn, values[:MAX_VALUES])
    return {value: found[value] for value in values if value in found}


#: The most ``Domain`` values cleared (a name's closest parents, where a
#: sibling subdomain plants: ``Domain=example.com``).  The ``Host`` header
#: is the client's to write: a made-up host of thousands of labels must not
#: make thousands of ``Set-Cookie`` headers.
MAX_COOKIE_DOMAINS = 8
#: A DNS host name (RFC 1123): what a browser can hold domain cookies for.
_HOST_NAME = re.compile(
    r"(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.)*"
    r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
)

#: A session id as the client sends it back (``?session=``).
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


@dataclass(frozen=True)
class Choice:
    """The value to refresh with, and the live sessions of the others."""

    token: str
    #: Planted, or left over: revoked by the refresh that sets ours.
    others: list[KnownToken]


def session_hint() -> str | None:
    """The session the page holds, as the browser client names it
    (``?session=<sid>``); ``None`` if absent or not an id."""
    value = request.args.get("session")
    return value if value and _SESSION_ID.fullmatch(value) else None


def choose_refresh_token(
    state: TokenAuthState, values: list[str], hint: str | None = None
) -> Choice:
    """The one of several cookie values (``len(values) > 1``) to refresh with.

    The live token of ours, if there is exactly one (and it is of the
    session ``hint`` names, if any); of several, the one of the session
    ``hint`` names (the page's own, see the module's doc).  With
    none live, the only value of ours if there is exactly one, so that
    rotating it answers as it would alone (a repeat within the reuse
    interval, reuse detection); several dead ones of ours are left alone, as
    a dead one can be a harmless leftover next to a live one (e.g. under a
    former cookie path).

    :raises RefreshTokenAmbiguous: two or more live tokens of ours, or a
        hint, and no live one of the session the hint names; it carries
        the live ones' sessions.
    :raises RefreshTokenInvalid: no value to refresh with, or more values
        than a browser would hold.
    """
    if len(values) > MAX_VALUES:
        raise RefreshTokenInvalid()
    known = _known(state, values)
    live = [value for value, token in known.items() if token.live]
    # A page that names its session is never switched to another one: with
    # its own cookie dead or out of reach, a live one beside it is planted
    # (login CSRF) or left over, and ends as two unnamed ones would.
    if len(live) > 1 or (live and hint is not None):
        mine = [value for value in live if known[value].family_id == hint]
        if len(mine) != 1:
            raise RefreshTokenAmbiguous(sessions=[known[value] for value in live])
        others = [known[value] for value in live if value != mine[0]]
        return Choice(mine[0], others)
    if live:
        return Choice(live[0], [])
    if len(known) == 1:
        return Choice(next(iter(known)), [])
    raise RefreshTokenInvalid()


def presented_sessions(state: TokenAuthState, values: list[str]) -> list[KnownToken]:
    """The session of each cookie value that is one of ours, live or not,
    once each, in the order sent: what a logout revokes.

    All of them, not only the live one: the caller wants to be logged out,
    a spent token's session may still be live (one value alone is revoked
    the same way), and revoking a tossed token's session only ends a session
    its owner gave away by planting it.  It is also how a victim of a tossed
    live token gets out of :class:`RefreshTokenAmbiguous`.
    """
    if not values:
        return []
    sessions: dict[str, KnownToken] = {}
    for token in _known(state, values).values():
        sessions.setdefault(token.family_id, token)
    return list(sessions.values())


def _cookie_paths(url_path: str) -> list[str]:
    """Every ``Path`` with which a browser sends a cookie to ``url_path``
    (RFC 6265 5.1.4: the path itself and each prefix that ends at a ``/``,
    with and without that ``/``)."""
    paths = ["/"]
    segments = [part for part in url_path.split("/") if part]
    for i in range(1, len(segments) + 1):
        prefix = "/" + "/".join(segments[:i])
        paths.append(prefix)
        if i < len(segments):
            paths.append(prefix + "/")
    return paths


def _cookie_domains(host: str) -> list[str | None]:
    """``None`` (a host-only cookie) and each ``Domain`` a cookie sent to
    ``host`` can have: the host and each parent with two labels or more.  A
    public suffix (``co.uk``) among them is refused by the browser, as it
    would have been to the planter; an IP address or a single-label host
    has no domain cookies.  So has a ``Host`` that is no DNS name; of a
    deeper name, only the :data:`MAX_COOKIE_DOMAINS` closest to the top."""
    name = (urlsplit(f"//{host}").hostname or "").rstrip(".")
    try:
        ipaddress.ip_address(name)
    except ValueError:
        if not _HOST_NAME.fullmatch(name):
            return [None]
        labels = name.split(".")
        first = max(len(labels) - 1 - MAX_COOKIE_DOMAINS, 0)
        return [None, *(".".join(labels[i:]) for i in range(first, len(labels) - 1))]
    return [None]


def clear_refresh_cookies(
    response: Response, settings: Settings, *, keep_own: bool
) -> None:
    """Expire the refresh cookie's name at every path and domain from which
    a browser would send it to this blueprint's ``/refresh``: wherever a
    planted one can be that we are allowed to reach (docs/security.md,
    "The refresh cookie: tossing, prefixes, Origin", says what is out of reach).

    :param keep_own: spare our own cookie's path and domain (the response
        sets it anew, after these).
    """
    name = settings.cookie_name
    candidates: list[tuple[str | None, str]]
    if name.startswith("__Host-"):
        # Host-only, Secure, Path=/: no other host or plain-http page can
        # set one; there is nothing but our own to clear.
        candidates = [(None, "/")]
    else:
        assert request.url_rule is not None
        refresh = request.script_root + request.url_rule.rule.rsplit("/", 1)[0]
        candidates = [
            (domain, path)
            for domain in _cookie_domains(request.host)
            for path in _cookie_paths(refresh + "/refresh")
        ]
    own_domain = (settings.cookie_domain or "").lstrip(".").lower() or None
    own = (own_domain, cookie_path(settings))
    # A planted Partitioned (CHIPS) cookie is only cleared by a Set-Cookie
    # that says Partitioned too, which requires Secure.
    partitions = (False, True) if settings.cookie_secure else (False,)
    for domain, path in candidates:
        for partitioned in partitions:
            if keep_own and (domain, path) == own and not partitioned:
                continue
            response.headers.add(
                "Set-Cookie",
                dump_cookie(
                    name,
                    "",
                    max_age=0,
                    expires=0,
                    path=path,
                    domain=domain,
                    secure=settings.cookie_secure,
                    httponly=True,
                    samesite=settings.cookie_samesite,
                    partitioned=partitioned,
                ),
            )
