"""Skeleton of the second factor (issue 18): replaced by its owner."""

from __future__ import annotations

from flask import Response

from ..errors import NotFound


def reauthenticate() -> Response:
    raise NotFound()
