"""A route that sends one account mail, for the mail tests; and an app with
it for gunicorn (``tests.mail_app:create_app()``), configured from
``MAILAPP_*`` variables (``MAILAPP_MAIL_PORT=2525`` sets ``MAIL_PORT``,
Flask's ``from_prefixed_env``)."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, request

from flask_tokenauth import TokenAuth, auth_bp
from flask_tokenauth._mail import send_mail
from flask_tokenauth.testing import wait_for_mail

#: The link the test mails carry; its token must never reach a log.
TOKEN = "abc.DEF-123_x"
LINK = f"http://app.test/reset-password#token={TOKEN}"


def add_send_route(app: Flask) -> Flask:
    """``POST /send?to=...[&name=...][&template=test]`` mails ``template``
    with :data:`LINK` and answers ``{"sent": true, "pid": ...}`` at once."""

    @app.post("/send")
    def send() -> dict[str, Any]:
        send_mail(
            request.args.get("template", "test"),
            request.args["to"],
            link=LINK,
            name=request.args.get("name", ""),
        )
        return {"sent": True, "pid": os.getpid()}

    return app


def create_app() -> Flask:
    """Loaded before the fork (``gunicorn --preload``), and its outbox put to
    use there (a mail to ``MAILAPP_PRELOAD_TO``): each worker must start its
    own outbox thread (a thread does not survive a fork)."""
    app = Flask(__name__)
    app.config.from_prefixed_env("MAILAPP")
    TokenAuth(app)
    app.register_blueprint(auth_bp)
    add_send_route(app)

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "pid": os.getpid()}

    with app.test_request_context():
        send_mail("test", app.config["PRELOAD_TO"], link=LINK)
    wait_for_mail(app)
    return app
