"""The fuzz run's set-up (tests/fuzz.py, schemathesis.toml) without running
it: the example app it serves describes every operation, and the
configuration is one schemathesis loads, naming operations that exist.  A
flow added behind a switch the run leaves off, or an operation renamed
under an exemption, would otherwise make the fuzzer quietly test less."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from examples.app import create_app, settings_from
from flask_tokenauth.openapi._document import OPERATIONS

from .conftest import ACCESS_SECRET, REFRESH_SECRET
from .fuzz import SETTINGS
from .servers import ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

pytestmark = pytest.mark.sqlite

CONFIG = ROOT / "schemathesis.toml"


def served_operation_ids() -> set[str]:
    """The operation ids of the example app as the fuzz run configures it
    (its environment, read as the example reads it)."""
    app = create_app(
        {
            **settings_from(SETTINGS),
            "TOKENAUTH_DATABASE_URL": "sqlite://",
            "TOKENAUTH_ACCESS_SECRET": ACCESS_SECRET,
            "TOKENAUTH_REFRESH_SECRET": REFRESH_SECRET,
        }
    )
    document = app.test_client().get("/api/auth/openapi.json").get_json()
    return {
        operation["operationId"]
        for item in document["paths"].values()
        for operation in item.values()
    }


def test_the_fuzzed_app_serves_every_operation() -> None:
    declared = {op.id for methods in OPERATIONS.values() for op in methods.values()}
    assert served_operation_ids() == declared


def test_the_configuration_loads_and_names_served_operations(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from schemathesis.config import SchemathesisConfig

    # tests/fuzz.py sets these for the run.
    monkeypatch.setenv("FUZZ_EMAIL", "fuzz@example.com")
    monkeypatch.setenv("FUZZ_PASSWORD", "a password")
    SchemathesisConfig.from_path(str(CONFIG))
    raw: dict[str, Any] = tomllib.loads(CONFIG.read_text())
    named: set[str] = set()
    for entry in raw["operations"]:
        ids = entry["include-operation-id"]
        named.update([ids] if isinstance(ids, str) else ids)
    assert named, "no per-operation settings: update this test"
    assert named <= served_operation_ids()
