"""Skeleton of a mail flow (issue 17): replaced by its owner."""

from __future__ import annotations

from flask import Response

from ..errors import NotFound


def request_login() -> Response:
    raise NotFound()


def verify() -> Response:
    raise NotFound()
