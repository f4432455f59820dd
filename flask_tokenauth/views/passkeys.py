"""Skeleton of the second factor (issue 18): replaced by its owner."""

from __future__ import annotations

from flask import Response

from ..errors import NotFound


def register_options() -> Response:
    raise NotFound()


def register() -> Response:
    raise NotFound()


def login_options() -> Response:
    raise NotFound()


def login() -> Response:
    raise NotFound()


def verify_options() -> Response:
    raise NotFound()


def verify() -> Response:
    raise NotFound()


def list_passkeys() -> Response:
    raise NotFound()


def passkey(passkey_id: str) -> Response:
    raise NotFound()
