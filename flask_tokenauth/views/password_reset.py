"""Skeleton of a mail flow (issue 17): replaced by its owner."""

from __future__ import annotations

from flask import Response

from ..errors import NotFound


def forgot_password() -> Response:
    raise NotFound()


def reset_password() -> Response:
    raise NotFound()
