"""The example app as the browser tests serve it, in a gunicorn process of
its own (``tests.browser_app:create_app()``): ``examples/app.py``, configured
from the environment, plus two things only tests need.

- ``POST /api/echo`` (login required) answers the JSON body it was sent, so a
  test can see that a request with a body is retried with that body.
- ``BROWSER_TEST_REFRESH_DELAY`` (seconds) holds every ``/refresh`` that long
  before it runs.  Two clients that present the same refresh token within
  that window are then both inside the server at once, every time, so a test
  of the client's coordination does not pass by luck of timing.
"""

from __future__ import annotations

import os
import time
from typing import Any

from flask import Flask, request

from examples.app import create_app as create_example_app
from flask_tokenauth import login_required


def create_app() -> Flask:
    app = create_example_app()
    delay = float(os.environ.get("BROWSER_TEST_REFRESH_DELAY", "0"))

    @app.before_request
    def hold_refresh() -> None:
        if delay and request.path == "/api/auth/refresh":
            time.sleep(delay)

    @app.post("/api/echo")
    @login_required
    def echo() -> Any:
        return {"received": request.get_json()}

    return app
