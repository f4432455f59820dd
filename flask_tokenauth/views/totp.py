"""Skeleton of the second factor (issue 18): replaced by its owner."""

from __future__ import annotations

from flask import Response

from ..errors import NotFound


def enroll() -> Response:
    raise NotFound()


def confirm() -> Response:
    raise NotFound()


def remove() -> Response:
    raise NotFound()
