"""The conformance report: the evidence and ``CONFORMANCE.md`` agree with the
markers, applicability follows the settings, and ``flask tokenauth
conformance --check`` fails on a requirement with no test, a failed test or
no passing one.  (The scan and the recorder: test_conformance_recorder.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_tokenauth import TokenAuth, auth_bp
from flask_tokenauth import _conformance as conformance
from flask_tokenauth._config import Settings
from flask_tokenauth._conformance_catalog import PROFILES, REQUIREMENTS, Context

from . import conformance as suite
from .conftest import base_config

#: What a mail flow needs to start.
MAIL = {"TOKENAUTH_MAIL_BACKEND": "log", "TOKENAUTH_LINK_BASE_URL": "https://a.test"}
CLAIMABLE = {r.id for r in REQUIREMENTS if r.host is None and r.gap is None}


def test_the_shipped_evidence_is_the_markers() -> None:
    """``python -m tests.conformance --update`` after changing a marker."""
    assert conformance.load_evidence() == suite.scan()


@pytest.mark.slow
def test_conformance_md_is_what_the_cli_prints_for_the_example_app() -> None:
    """``python -m tests.conformance --update`` after changing a marker or
    the catalogue.  No outcomes in it: it does not change from run to run."""
    assert suite.CONFORMANCE_MD.read_text() == suite.example_markdown()


def test_markers_name_catalogued_requirements_and_every_claim_has_a_test() -> None:
    evidence = suite.scan()
    assert set(evidence) <= CLAIMABLE, "a marker names no claimable requirement"
    assert set(evidence) >= CLAIMABLE, "a claimable requirement has no test"


def test_ids_are_unique_and_in_known_profiles() -> None:
    ids = [r.id for r in REQUIREMENTS]
    assert len(ids) == len(set(ids))
    assert all(r.profiles and r.profiles <= set(PROFILES) for r in REQUIREMENTS)


# Applicability follows the settings.


def context(has_email: bool = True, webauthn: bool = True, **config: Any) -> Context:
    settings = Settings.from_mapping(base_config(**config))
    return Context(settings, has_email=has_email, webauthn_installed=webauthn)


def status(ctx: Context, rid: str, profile: str = "asvs-l2") -> tuple[str, str | None]:
    [row] = [
        r
        for r in conformance.evaluate(profile, ctx, {}, None)
        if r.requirement.id == rid
    ]
    return row.status, row.reason


@pytest.mark.parametrize(
    ("rid", "config", "reason"),
    [
        (
            "ASVS-5.0-6.3.1",
            {"TOKENAUTH_RATELIMIT_ENABLED": False},
            "TOKENAUTH_RATELIMIT_ENABLED is off",
        ),
        (
            "ASVS-5.0-6.2.4",
            {"TOKENAUTH_PASSWORD_BLOCKLIST": False},
            "TOKENAUTH_PASSWORD_BLOCKLIST is off",
        ),
        (
            "ASVS-5.0-6.2.2",
            {"TOKENAUTH_PASSWORD_CHANGE_ENABLED": False},
            "TOKENAUTH_PASSWORD_CHANGE_ENABLED is off",
        ),
        ("ASVS-5.0-3.4.1", {"TOKENAUTH_HSTS": ""}, "TOKENAUTH_HSTS"),
        ("ASVS-5.0-3.4.1", {"TOKENAUTH_HSTS": "max-age=3600"}, "TOKENAUTH_HSTS"),
        ("ASVS-5.0-7.4.1", {"TOKENAUTH_REVOCATION": "off"}, "TOKENAUTH_REVOCATION"),
        ("ASVS-5.0-7.3.1", {}, "TOKENAUTH_IDLE_TIMEOUT is unset"),
        ("ASVS-5.0-6.3.3", {}, "TOKENAUTH_MFA is optional"),
        ("ASVS-5.0-3.3.1", {}, "'refresh_token' has neither"),
        (
            "NIST-800-63B-4-5.1.1",
            {"TOKENAUTH_COOKIE_SECURE": False},
            "TOKENAUTH_COOKIE_SECURE is off",
        ),
        ("ASVS-5.0-6.4.3", {}, "TOKENAUTH_PASSWORD_RESET_ENABLED is off"),
    ],
)
def test_not_applicable_says_which_setting(
    rid: str, config: dict[str, Any], reason: str
) -> None:
    profile = "nist-aal2" if rid.startswith("NIST") else "asvs-l2"
    kind, why = status(context(**config), rid, profile)
    assert kind == "n/a" and why is not None and reason in why, why


@pytest.mark.parametrize(
    ("rid", "config"),
    [
        ("ASVS-5.0-6.3.1", {}),
        ("ASVS-5.0-3.4.1", {}),
        ("ASVS-5.0-7.3.1", {"TOKENAUTH_IDLE_TIMEOUT": "1h"}),
        ("ASVS-5.0-6.3.3", {"TOKENAUTH_MFA": "required"}),
        (
            "ASVS-5.0-3.3.1",
            {"TOKENAUTH_COOKIE_NAME": "__Host-r", "TOKENAUTH_COOKIE_PATH": "/"},
        ),
        ("ASVS-5.0-6.4.3", {"TOKENAUTH_PASSWORD_RESET_ENABLED": True, **MAIL}),
    ],
)
def test_the_same_requirements_apply_when_the_settings_allow(
    rid: str, config: dict[str, Any]
) -> None:
    assert status(context(**config), rid) == ("claimed", None)


def test_mail_flows_need_a_store_with_addresses() -> None:
    ctx = context(
        has_email=False,
        TOKENAUTH_PASSWORD_RESET_ENABLED=True,
        **MAIL,
    )
    assert status(ctx, "ASVS-5.0-6.4.3") == (
        "n/a",
        "the user store has no email addresses",
    )


def test_passkey_requirements_need_the_extra() -> None:
    on = {
        "TOKENAUTH_PASSKEYS_ENABLED": True,
        "TOKENAUTH_WEBAUTHN_RP_ID": "localhost",
        "TOKENAUTH_WEBAUTHN_ORIGINS": "http://localhost:5000",
    }
    pytest.importorskip("webauthn")
    assert status(context(**on), "WebAuthn-L3-7.2", "rfc") == ("claimed", None)
    assert status(context(webauthn=False, **on), "WebAuthn-L3-7.2", "rfc") == (
        "n/a",
        "the webauthn package (extra [passkeys]) is not installed",
    )
    assert status(context(), "WebAuthn-L3-7.2", "rfc")[1] == (
        "TOKENAUTH_PASSKEYS_ENABLED is off"
    )


# The command.


@pytest.fixture
def cli_app() -> Flask:
    app = Flask(__name__)
    app.config.update(base_config(TOKENAUTH_DATABASE_URL="sqlite://"))
    TokenAuth(app)
    app.register_blueprint(auth_bp)
    return app


def write_results(path: Path, outcome: dict[str, str] | None = None) -> Path:
    """Every claiming test passed (twice, as on two databases), except the
    outcomes ``outcome`` names; a test named with ``None`` did not run."""
    outcome = outcome or {}
    tests = {}
    for rid, names in conformance.load_evidence().items():
        for name in names:
            if outcome.get(name, "passed") is None:
                continue
            for db in ("sqlite", "postgresql"):
                tests[f"{name}[{db}]"] = {
                    "outcome": outcome.get(name, "passed"),
                    "requirements": [rid],
                }
    path.write_text(json.dumps({"tests": tests}))
    return path


def invoke(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=["tokenauth", "conformance", *args])


def test_check_passes_when_every_claim_has_a_passing_test(
    cli_app: Flask, tmp_path: Path
) -> None:
    results = write_results(tmp_path / "r.json")
    for profile in PROFILES:
        result = invoke(
            cli_app, "--profile", profile, "--results", str(results), "--check"
        )
        assert result.exit_code == 0, result.output
    out = invoke(cli_app, "--profile", "asvs-l1", "--results", str(results)).output
    assert "[ok] ASVS-5.0-9.1.2" in out
    assert "tests/test_keys.py::test_forged_token_corpus  (passed)" in out
    assert "[N/A ] ASVS-5.0-3.3.1" in out and "__Host-" in out
    assert "[host] ASVS-5.0-12.1.1" in out


def test_check_fails_on_a_failed_test(cli_app: Flask, tmp_path: Path) -> None:
    corpus = "tests/test_keys.py::test_forged_token_corpus"
    results = write_results(tmp_path / "r.json", {corpus: "failed"})
    result = invoke(
        cli_app, "--profile", "asvs-l1", "--results", str(results), "--check"
    )
    assert result.exit_code == 1
    assert f"asvs-l1: ASVS-5.0-9.1.2: failed: {corpus}" in result.output
    assert "[!!] ASVS-5.0-9.1.2" in result.output


def test_check_fails_when_no_test_of_a_requirement_passed(
    cli_app: Flask, tmp_path: Path
) -> None:
    [only] = conformance.load_evidence()["ASVS-5.0-6.3.2"]
    results = write_results(tmp_path / "r.json", {only: None})
    result = invoke(
        cli_app, "--profile", "asvs-l1", "--results", str(results), "--check"
    )
    assert result.exit_code == 1
    assert "ASVS-5.0-6.3.2: none of its tests passed" in result.output
    assert f"{only}  (not run)" in result.output
    skipped = write_results(tmp_path / "s.json", {only: "skipped"})
    result = invoke(
        cli_app, "--profile", "asvs-l1", "--results", str(skipped), "--check"
    )
    assert "ASVS-5.0-6.3.2: none of its tests passed" in result.output


def test_check_fails_on_a_requirement_no_test_claims(
    cli_app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = write_results(tmp_path / "r.json")
    evidence = conformance.load_evidence()
    del evidence["ASVS-5.0-2.2.1"]
    monkeypatch.setattr(conformance, "load_evidence", lambda: evidence)
    monkeypatch.setattr(
        "flask_tokenauth._cli_conformance.load_evidence", lambda: evidence
    )
    result = invoke(
        cli_app, "--profile", "asvs-l1", "--results", str(results), "--check"
    )
    assert result.exit_code == 1
    assert "ASVS-5.0-2.2.1: no test claims it" in result.output


def test_check_needs_results(cli_app: Flask, tmp_path: Path) -> None:
    missing = tmp_path / "none.json"
    result = invoke(cli_app, "--results", str(missing), "--check")
    assert result.exit_code == 1
    assert f"No test results at {missing}: run the test suite first" in result.output
    (tmp_path / "bad.json").write_text("[]")
    result = invoke(cli_app, "--results", str(tmp_path / "bad.json"))
    assert (
        result.exit_code == 1 and "is not a conformance results file" in result.output
    )


def test_markdown_is_stable_and_ignores_outcomes(
    cli_app: Flask, tmp_path: Path
) -> None:
    failed = write_results(
        tmp_path / "r.json", {"tests/test_keys.py::test_forged_token_corpus": "failed"}
    )
    first = invoke(cli_app, "--markdown").output
    assert first == invoke(cli_app, "--markdown", "--results", str(failed)).output
    assert first.startswith("# Conformance\n")
    for profile in PROFILES:
        assert f"\n## {profile}: {PROFILES[profile]}\n" in first
    only = invoke(cli_app, "--markdown", "--profile", "nist-aal2").output
    assert "## nist-aal2" in only and "## asvs-l1" not in only
