"""A test that holds the app context across requests (``with
app.app_context():``, the usual Flask-SQLAlchemy fixture) shares ``g``
between them: what one request learnt of its caller or read from its body
must not serve the next one.
"""

from __future__ import annotations

from flask import Flask

from flask_tokenauth import current_user, login_required

from .conftest import PASSWORD, Auth, bearer


def test_each_request_is_its_own_caller(app: Flask) -> None:
    @app.get("/whoami")
    @login_required
    def whoami() -> dict[str, str]:
        return {"email": current_user.email}

    client = app.test_client()
    auth = Auth(client)
    tokens = {}
    for email in ("first@example.com", "second@example.com"):
        assert auth.register(email).status_code == 201
        tokens[email] = auth.login(email).get_json()["accessToken"]

    with app.app_context():
        for email, token in tokens.items():
            response = client.get("/whoami", headers=bearer(token))
            assert response.get_json() == {"email": email}
        assert client.get("/whoami").status_code == 401


def test_each_request_reads_its_own_body(app: Flask) -> None:
    client = app.test_client()
    auth = Auth(client)
    assert auth.register("known@example.com").status_code == 201
    with app.app_context():
        assert auth.login("known@example.com").status_code == 200
        wrong = auth.login("known@example.com", PASSWORD + " not")
        assert wrong.status_code == 401
        other = auth.register("other@example.com")
        assert other.get_json()["user"]["email"] == "other@example.com"
