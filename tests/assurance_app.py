"""An app for the assurance tests served by gunicorn
(``tests.assurance_app:create_app()``), configured from ``ASSURANCEAPP_*``
variables (Flask's ``from_prefixed_env``): the views of
:mod:`tests.assurance_helpers` and the worker's pid on every answer."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, Response

from flask_tokenauth import TokenAuth, auth_bp

from .assurance_helpers import add_views


def create_app() -> Flask:
    app = Flask(__name__)
    app.config.from_prefixed_env("ASSURANCEAPP")
    TokenAuth(app)
    app.register_blueprint(auth_bp)
    add_views(app)

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "pid": os.getpid()}

    @app.after_request
    def worker(response: Response) -> Response:
        response.headers["X-Worker"] = str(os.getpid())
        return response

    return app
