"""A process of its own, started by ``tests/test_revocation_copies.py``
after the revocations it is asked about were made: it builds the app from
the configuration in ``$COPY_CONFIG`` (JSON), waits until its copy of the
revocations is current (unless ``$COPY_AT_ONCE``), and prints, as one JSON
line, what a protected view that never loads the user answers for each
token of ``$COPY_TOKENS``."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from flask import Flask

from flask_tokenauth import TokenAuth, current_claims, login_required
from flask_tokenauth._revocation import DatabaseRevocation, RedisRevocation


def current(revocation: Any) -> bool:
    if isinstance(revocation, DatabaseRevocation):
        return revocation.copy is not None and revocation.copy.current()
    assert isinstance(revocation, RedisRevocation)
    mirror = revocation._mirror
    return mirror is not None and mirror.lookup("", "")[2]


def main() -> None:
    app = Flask(__name__)
    app.config.update(json.loads(os.environ["COPY_CONFIG"]))
    TokenAuth(app)

    @app.get("/claims")
    @login_required
    def claims() -> Any:
        return {"sub": current_claims["sub"]}

    revocation = app.extensions["tokenauth"].revocation
    deadline = time.monotonic() + 30
    with app.app_context():
        # COPY_AT_ONCE: answer at start, before the copy is current (it
        # asks the store then).
        while not os.environ.get("COPY_AT_ONCE") and not current(revocation):
            if time.monotonic() > deadline:
                sys.exit("the copy never became current")
            time.sleep(0.01)
    client = app.test_client()
    answers = []
    for token in json.loads(os.environ["COPY_TOKENS"]):
        response = client.get("/claims", headers={"Authorization": f"Bearer {token}"})
        answers.append([response.status_code, (response.get_json() or {}).get("code")])
    print(json.dumps({"answers": answers, "current": current(revocation)}))


if __name__ == "__main__":
    main()
