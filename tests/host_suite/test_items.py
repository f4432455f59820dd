"""25 tests of the host app's own API (not of flask_tokenauth)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask.testing import FlaskClient

from .app import Item, User, db

Headers = Callable[[User], dict[str, str]]


def create(client: FlaskClient, headers: dict[str, str], name: str) -> int:
    response = client.post("/api/items", json={"name": name}, headers=headers)
    assert response.status_code == 201
    return int(response.get_json()["id"])


def test_me(client: FlaskClient, headers: Headers, alice: User) -> None:
    response = client.get("/api/me", headers=headers(alice))
    assert response.get_json() == {"id": alice.id, "username": "alice"}


def test_anonymous_is_refused(client: FlaskClient, alice: User) -> None:
    assert client.get("/api/items").status_code == 401


def test_empty_list(client: FlaskClient, headers: Headers, alice: User) -> None:
    assert client.get("/api/items", headers=headers(alice)).get_json() == {"items": []}


@pytest.mark.parametrize("name", ["a", "book", "lamp", "x" * 80, "ünïcode"])
def test_create_and_get(
    client: FlaskClient, headers: Headers, alice: User, name: str
) -> None:
    auth = headers(alice)
    item_id = create(client, auth, name)
    assert client.get(f"/api/items/{item_id}", headers=auth).get_json() == {
        "id": item_id,
        "name": name,
    }


@pytest.mark.parametrize("body", [{}, {"name": ""}, {"name": 3}, None])
def test_create_refuses_bad_bodies(
    client: FlaskClient, headers: Headers, alice: User, body: object
) -> None:
    response = client.post("/api/items", json=body, headers=headers(alice))
    assert response.status_code == 400


@pytest.mark.parametrize("count", [1, 2, 5])
def test_list_in_order(
    client: FlaskClient, headers: Headers, alice: User, count: int
) -> None:
    auth = headers(alice)
    ids = [create(client, auth, f"item {n}") for n in range(count)]
    items = client.get("/api/items", headers=auth).get_json()["items"]
    assert [item["id"] for item in items] == ids


def test_rename(client: FlaskClient, headers: Headers, alice: User) -> None:
    auth = headers(alice)
    item_id = create(client, auth, "old")
    response = client.patch(f"/api/items/{item_id}", json={"name": "new"}, headers=auth)
    assert response.get_json()["name"] == "new"
    assert db.session.get(Item, item_id).name == "new"  # type: ignore[union-attr]


def test_delete(client: FlaskClient, headers: Headers, alice: User) -> None:
    auth = headers(alice)
    item_id = create(client, auth, "gone")
    assert client.delete(f"/api/items/{item_id}", headers=auth).status_code == 204
    assert client.get(f"/api/items/{item_id}", headers=auth).status_code == 404


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_others_items_are_hidden(
    client: FlaskClient, headers: Headers, alice: User, bob: User, method: str
) -> None:
    item_id = create(client, headers(alice), "alice's")
    response = getattr(client, method)(
        f"/api/items/{item_id}", json={"name": "mine"}, headers=headers(bob)
    )
    assert response.status_code == 404


@pytest.mark.parametrize("missing", [0, 99, 12345])
def test_missing_item(
    client: FlaskClient, headers: Headers, alice: User, missing: int
) -> None:
    assert (
        client.get(f"/api/items/{missing}", headers=headers(alice)).status_code == 404
    )


def test_lists_are_per_user(
    client: FlaskClient, headers: Headers, alice: User, bob: User
) -> None:
    create(client, headers(alice), "a1")
    create(client, headers(bob), "b1")
    items = client.get("/api/items", headers=headers(bob)).get_json()["items"]
    assert [item["name"] for item in items] == ["b1"]


def test_each_test_has_a_new_database(app: object) -> None:
    assert db.session.query(Item).count() == 0
    assert db.session.query(User).count() == 0
