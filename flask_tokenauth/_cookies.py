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
- One live token of ours among them: it is the one to refresh with.
- Two or more live tokens (of different sessions, as a family has one live
  token at a time): one is probably an attacker's own session, planted to
  sign the victim's page into the attacker's account (login CSRF).  Using
  neither, and touching neither, is the only safe answer.

A cookie name with the ``__Host-`` prefix (see ``TOKENAUTH_COOKIE_NAME``)
keeps other hosts from tossing a cookie of that name in the first place.
"""

from __future__ import annotations

from flask import request

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


def choose_refresh_token(state: TokenAuthState, values: list[str]) -> str:
    """The one of several cookie values (``len(values) > 1``) to refresh with.

    The live token of ours, if there is exactly one.  With none live, the
    only value of ours if there is exactly one, so that rotating it answers
    as it would alone (a repeat within the reuse interval, reuse detection);
    several dead ones of ours are left alone, as a dead one can be a
    harmless leftover next to a live one (e.g. under a former cookie path).

    :raises RefreshTokenAmbiguous: two or more live tokens of ours.
    :raises RefreshTokenInvalid: no value to refresh with, or more values
        than a browser would hold.
    """
    if len(values) > MAX_VALUES:
        raise RefreshTokenInvalid()
    known = _known(state, values)
    live = [value for value, token in known.items() if token.live]
    if len(live) > 1:
        raise RefreshTokenAmbiguous()
    if live:
        return live[0]
    if len(known) == 1:
        return next(iter(known))
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
