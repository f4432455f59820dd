"""What a session records of the client that started it: its user agent
and address, made safe to store and to show (see
:meth:`._refresh.RefreshTokens.start_family`)."""

from __future__ import annotations

import ipaddress
import unicodedata

#: What is kept of a client's User-Agent header.
MAX_USER_AGENT = 512


def clean_user_agent(value: str | None) -> str | None:
    """What a client sent, made safe to store and to show: no control
    characters (C0, DEL, C1: a terminal would act on escape sequences when
    the CLI lists sessions), bounded."""
    value = "".join(c for c in value or "" if unicodedata.category(c) != "Cc")
    return value[:MAX_USER_AGENT] or None


def valid_ip(value: str | None) -> str | None:
    """An address worth recording (a forwarded one is whatever a proxy
    wrote), or ``None``."""
    try:
        return str(ipaddress.ip_address(value or ""))
    except ValueError:
        return None
