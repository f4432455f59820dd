"""The conformance report: each requirement of a profile, the tests that
prove it and how they last ended, or why it does not apply.

Three inputs, each kept where it belongs:

* the catalogue (:mod:`._conformance_catalog`): what each standard asks and
  when it applies to an app;
* the evidence, ``data/conformance-evidence.json``: which tests claim which
  requirement, read from the ``@pytest.mark.requirement`` markers of the
  test suite (``python -m tests.conformance --update`` writes it; a test
  fails when it is out of date), shipped so a host app sees it too;
* the results, a JSON file the suite's pytest plugin writes at the end of
  each run (``test-artifacts/conformance-results.json``): each test's last
  outcome.  A test that ran with several parameters passed if every run of
  it passed or was skipped and at least one passed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.resources import files
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from ._conformance_catalog import PROFILES, REQUIREMENTS, Context, Requirement
from ._state import TokenAuthState

__all__ = [
    "EVIDENCE_FILE",
    "Row",
    "context_of",
    "evaluate",
    "function_id",
    "load_evidence",
    "load_results",
    "problems",
    "render_markdown",
    "render_text",
]

EVIDENCE_FILE = "conformance-evidence.json"

#: A test function's summary outcome, worst first.
OUTCOMES = ("failed", "passed", "skipped", "not run")


@dataclass(frozen=True)
class Row:
    """One requirement as it stands for one app."""

    requirement: Requirement
    #: ``"claimed"``, ``"n/a"``, ``"host"`` or ``"gap"``.
    status: str
    #: Why not applicable, the host's, or not met.
    reason: str | None
    #: The claiming tests with their outcome (``"passed"``...), sorted.
    tests: tuple[tuple[str, str], ...]

    @property
    def proven(self) -> bool:
        return any(outcome.startswith("passed") for _, outcome in self.tests)

    @property
    def failed(self) -> bool:
        return any(outcome.startswith("failed") for _, outcome in self.tests)


def context_of(state: TokenAuthState) -> Context:
    """The applicability context of one app."""
    return Context(
        settings=state.settings,
        has_email=state.user_store.has_email,
        webauthn_installed=find_spec("webauthn") is not None,
    )


def function_id(node_id: str) -> str:
    """A pytest node id without its parameters: the test function."""
    return node_id.split("[", 1)[0]


def load_evidence(path: Path | None = None) -> dict[str, list[str]]:
    """Requirement id -> the ids of the test functions that claim it."""
    if path is None:
        text = files("flask_tokenauth").joinpath(f"data/{EVIDENCE_FILE}").read_text()
    else:
        text = path.read_text()
    data: dict[str, list[str]] = json.loads(text)["requirements"]
    return data


def load_results(path: Path) -> dict[str, str]:
    """Test function id -> its summary outcome, from the plugin's file;
    ``", earlier run"`` appended when it comes from a run before the last
    (a partial run left it as it was; it still counts).

    :raises ValueError: the file is not a results file.
    """
    try:
        tests: Mapping[str, Any] = json.loads(path.read_text())["tests"]
        by_function: dict[str, list[tuple[str, bool]]] = {}
        for node_id, entry in tests.items():
            by_function.setdefault(function_id(node_id), []).append(
                (entry["outcome"], bool(entry.get("stale")))
            )
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path} is not a conformance results file ({e})") from None
    return {name: _summary(runs) for name, runs in by_function.items()}


def _summary(runs: list[tuple[str, bool]]) -> str:
    seen = {outcome for outcome, _ in runs}
    if "failed" in seen:
        outcome = "failed"
    else:
        outcome = "passed" if "passed" in seen else "skipped"
    return f"{outcome}, earlier run" if all(stale for _, stale in runs) else outcome


def evaluate(
    profile: str,
    context: Context,
    evidence: Mapping[str, list[str]],
    results: Mapping[str, str] | None,
) -> list[Row]:
    """The rows of ``profile``, in catalogue order.  ``results`` ``None``:
    the outcomes are left out (``"-"``)."""
    rows = []
    for req in REQUIREMENTS:
        if profile not in req.profiles:
            continue
        tests = tuple(
            (test, "-" if results is None else results.get(test, "not run"))
            for test in sorted(evidence.get(req.id, ()))
        )
        if req.host is not None:
            rows.append(Row(req, "host", req.host, tests))
            continue
        if req.gap is not None:
            rows.append(Row(req, "gap", req.gap, tests))
            continue
        reason = req.applies(context)
        rows.append(Row(req, "claimed" if reason is None else "n/a", reason, tests))
    return rows


def problems(rows: Iterable[Row]) -> list[str]:
    """Why ``--check`` fails: each applicable requirement with no passing
    test, or with a failed one."""
    found = []
    for row in rows:
        if row.status != "claimed":
            continue
        if not row.tests:
            found.append(f"{row.requirement.id}: no test claims it")
        elif row.failed:
            failed = [t for t, outcome in row.tests if outcome.startswith("failed")]
            found.append(f"{row.requirement.id}: failed: {', '.join(failed)}")
        elif not row.proven:
            found.append(f"{row.requirement.id}: none of its tests passed")
    return found


def counts(rows: Iterable[Row]) -> dict[str, int]:
    """Claimed, proven (a passing test, none failed), N/A, host's, not met."""
    rows = list(rows)
    claimed = [r for r in rows if r.status == "claimed"]
    return {
        "claimed": len(claimed),
        "proven": sum(r.proven and not r.failed for r in claimed),
        "n/a": sum(r.status == "n/a" for r in rows),
        "host": sum(r.status == "host" for r in rows),
        "gap": sum(r.status == "gap" for r in rows),
    }


def render_text(profile: str, rows: list[Row]) -> str:
    """The terminal report of one profile."""
    c = counts(rows)
    lines = [
        f"{profile}: {PROFILES[profile]}",
        f"  {c['claimed']} claimed, {c['proven']} proven, {c['n/a']} not applicable,"
        f" {c['host']} the host's, {c['gap']} not met",
    ]
    for row in rows:
        req = row.requirement
        if row.status == "claimed":
            mark = "ok" if row.proven and not row.failed else "!!"
            lines.append(f"  [{mark}] {req.id}  {req.title}")
            lines += [f"         {test}  ({outcome})" for test, outcome in row.tests]
            if not row.tests:
                lines.append("         no test claims it")
        else:
            label = {"n/a": "N/A ", "host": "host", "gap": "gap "}[row.status]
            lines.append(f"  [{label}] {req.id}  {req.title}")
            lines.append(f"         {row.reason}")
    return "\n".join(lines) + "\n"


def render_markdown(sections: list[tuple[str, list[Row]]], app_name: str) -> str:
    """``CONFORMANCE.md``: every profile's requirements with the tests that
    claim them, without outcomes (those change with each run; the CLI and
    CI show them)."""
    out = [
        "# Conformance",
        "",
        "Generated by `flask tokenauth conformance --markdown` for the app"
        f" `{app_name}`; do not edit by hand. Each requirement is proven by the"
        " tests listed (their `@pytest.mark.requirement` markers), and CI fails"
        " when one of them does not pass (`tokenauth conformance --check`). Run the"
        " command against your own app to see what applies to its settings"
        " (see docs/conformance.md).",
        "",
    ]
    for profile, rows in sections:
        c = counts(rows)
        out += [
            f"## {profile}: {PROFILES[profile]}",
            "",
            f"{c['claimed']} claimed, {c['n/a']} not applicable to this app,"
            f" {c['host']} the host's responsibility, {c['gap']} not met by the"
            " library.",
            "",
            "| Requirement | What it asks | Proven by |",
            "|---|---|---|",
        ]
        for row in rows:
            if row.status == "claimed":
                tests = "<br>".join(f"`{t}`" for t in (t for t, _ in row.tests))
                out.append(
                    f"| {row.requirement.id} | {row.requirement.title} |"
                    f" {tests or '**no test**'} |"
                )
        for status, heading in (
            ("n/a", "Not applicable"),
            ("host", "The host's"),
            ("gap", "Not met by the library"),
        ):
            chosen = [r for r in rows if r.status == status]
            if chosen:
                out += [
                    "",
                    f"{heading}:",
                    "",
                    "| Requirement | What it asks | Why |",
                    "|---|---|---|",
                ]
                out += [
                    f"| {r.requirement.id} | {r.requirement.title} | {r.reason} |"
                    for r in chosen
                ]
        out.append("")
    return "\n".join(out)
