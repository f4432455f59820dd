"""Skeleton of a mail flow (issue 17): replaced by its owner."""

from __future__ import annotations

from flask import Response

from ..errors import NotFound


def request_change() -> Response:
    raise NotFound()


def confirm() -> Response:
    raise NotFound()


def cancel() -> Response:
    raise NotFound()
