"""The example app with two routes more, for the servers of
``tests/test_revocation_mirror.py``: which worker answered, and what its copy
of the revocations holds."""

from __future__ import annotations

import os
import time
from typing import Any

from flask import Flask, Response
from sqlalchemy import text

from examples.app import create_app as create_example
from flask_tokenauth import current_claims, login_required
from flask_tokenauth._state import get_state


def create_app() -> Flask:
    """Loaded before the fork (``gunicorn --preload``), the copy already in
    use there: each worker must start its own (a thread does not survive a
    fork)."""
    app = create_example()
    with app.app_context():
        state = get_state()
        revocation: Any = state.revocation
        revocation.copy.current()
        # Until the copy is current: on PostgreSQL its listener has probed
        # through the app's engine, so the pool holds a connection of this
        # process when gunicorn forks (each worker must make its own).
        deadline = time.monotonic() + 30
        while not revocation.copy.current() and time.monotonic() < deadline:
            time.sleep(0.01)

    @app.get("/test/backend")
    def backend() -> Any:
        """The database session the app's engine gives this worker."""
        with state.db.engine.connect() as conn:
            if conn.dialect.name != "postgresql":
                return {"backend": None}
            return {"backend": conn.execute(text("SELECT pg_backend_pid()")).scalar()}

    @app.get("/test/claims")
    @login_required
    def claims() -> Any:
        """A protected view that never loads the user: only the revocation
        store can refuse its token."""
        return {"sub": current_claims["sub"]}

    @app.get("/test/copy/<session_id>")
    def copy(session_id: str) -> Any:
        held = revocation.copy
        return {
            "current": held.current(),
            "revoked": session_id in held.sessions,
        }

    @app.after_request
    def worker(response: Response) -> Response:
        response.headers["X-Worker"] = str(os.getpid())
        return response

    return app
