"""Stored user agents hold no control characters: the sessions list and the
CLI show them, and a terminal acts on escape sequences."""

from __future__ import annotations

import pytest

from flask_tokenauth._refresh import MAX_USER_AGENT, _clean_user_agent


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("Mozilla/5.0 (X11; Linux x86_64)", "Mozilla/5.0 (X11; Linux x86_64)"),
        ("Bad\x00Agent", "BadAgent"),
        ("\x1b[2J\x1b[31mred\x1b[0m", "[2J[31mred[0m"),  # ESC (C0)
        ("a\tb\nc\rd", "abcd"),
        ("del\x7f", "del"),  # DEL
        ("csi\x9b2J osc\x9d0;title\x9c", "csi2J osc0;title"),  # C1
        ("Ünïcödé ☃ 😀", "Ünïcödé ☃ 😀"),  # printable non-ASCII is kept
        ("\x1b\x07\x00", None),  # nothing left
        ("", None),
        (None, None),
    ],
)
def test_control_characters_are_stripped(sent: str | None, stored: str | None) -> None:
    assert _clean_user_agent(sent) == stored


def test_length_is_bounded_after_cleaning() -> None:
    assert _clean_user_agent("\x1b" * 100 + "A" * 2000) == "A" * MAX_USER_AGENT
