"""pytest fixtures for a host application's tests (flask_tokenauth's pytest
plugin), loaded by pytest through the ``pytest11`` entry point wherever the
package is installed.

They build on the host's own ``app`` fixture (as pytest-flask does) and do
nothing unless a test asks for them::

    def test_profile(tokenauth_client, alice):
        assert tokenauth_client(alice).get("/api/profile").status_code == 200

    def test_profile_headers(client, tokenauth_headers, alice):
        response = client.get("/api/profile", headers=tokenauth_headers(alice))

Our tables, for a test database that the host's fixtures create per test,
without running our migrations (milliseconds, not a second)::

    @pytest.fixture(autouse=True)
    def _tables(tokenauth_tables):
        pass

pytest loads this module in *every* run where the package is installed, so
it imports nothing of flask_tokenauth (nor Flask) until a fixture runs, and
defines no autouse fixture.  That is also why it is a top-level module and
not ``flask_tokenauth.pytest_plugin``: importing a submodule imports the
package, and with it Flask, SQLAlchemy and Flask-Limiter (about 0.4 s).

.. versionadded:: 0.1
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from flask import Flask

    from flask_tokenauth.testing import TokenAuthClient


@pytest.fixture
def tokenauth_client(app: Flask) -> Callable[[Any], TokenAuthClient]:
    """``tokenauth_client(user)``: a test client of the ``app`` fixture signed
    in as ``user`` (a user object or an id); see
    :class:`~flask_tokenauth.testing.TokenAuthClient`."""
    from flask_tokenauth.testing import TokenAuthClient

    def make(user: Any) -> TokenAuthClient:
        return TokenAuthClient(app, app.response_class, user=user)

    return make


@pytest.fixture
def tokenauth_headers(app: Flask) -> Callable[[Any], dict[str, str]]:
    """``tokenauth_headers(user)``: ``{"Authorization": "Bearer <token>"}``
    for ``user`` on the ``app`` fixture; see
    :func:`~flask_tokenauth.testing.auth_headers`."""
    from flask_tokenauth.testing import auth_headers

    def make(user: Any) -> dict[str, str]:
        return auth_headers(user, app)

    return make


@pytest.fixture
def tokenauth_tables(app: Flask) -> Iterator[None]:
    """Our tables in the ``app`` fixture's database for the test, made from
    the models and stamped (:func:`flask_tokenauth.testing.create_tables`),
    then dropped: the per-test cost of an app's own ``db.create_all()``, not
    that of running our migrations."""
    from flask_tokenauth.testing import create_tables, drop_tables

    create_tables(app)
    yield
    drop_tables(app)
