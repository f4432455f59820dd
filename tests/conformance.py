"""The conformance report's side of the test suite.

* :class:`ResultsRecorder`, a pytest plugin (registered by ``conftest.py``):
  at the end of a session it writes each test that carries
  ``@pytest.mark.requirement(...)``, its requirement ids and its outcome to
  ``test-artifacts/conformance-results.json`` (``CONFORMANCE_RESULTS`` names
  another file).  A partial run (``PYTEST_ARGS=tests/test_x.py``) merges:
  the tests it ran get their new outcome, the others keep theirs, marked
  ``"stale": true`` so the file says which run they come from.
* :func:`scan`: the requirement markers read from the test files' source
  (no collection, no run: the same answer every time), for the evidence
  file the package ships and for ``CONFORMANCE.md``.

``python -m tests.conformance --update`` rewrites both from the markers;
``tests/test_conformance.py`` fails when either is out of date.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
EVIDENCE = ROOT / "flask_tokenauth" / "data" / "conformance-evidence.json"
CONFORMANCE_MD = ROOT / "CONFORMANCE.md"
DEFAULT_RESULTS = Path("test-artifacts") / "conformance-results.json"
MARKER = "requirement"


class ResultsRecorder:
    """Records the outcome of every test that names a requirement."""

    def __init__(self, config: pytest.Config) -> None:
        self.path = Path(config.rootpath) / os.environ.get(
            "CONFORMANCE_RESULTS", str(DEFAULT_RESULTS)
        )
        self.requirements: dict[str, list[str]] = {}
        self.outcomes: dict[str, str] = {}

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        # After deselection hooks (conftest's database variants): only the
        # tests that will run are recorded.
        for item in items:
            ids = [i for m in item.iter_markers(MARKER) for i in m.args]
            if ids:
                self.requirements[item.nodeid] = sorted(set(ids))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.nodeid not in self.requirements:
            return
        previous = self.outcomes.get(report.nodeid)
        if report.failed:
            outcome = "failed"  # in setup, call or teardown
        elif report.skipped:
            outcome = "skipped"
        elif report.when == "call":
            outcome = "passed"
        else:
            return
        if previous != "failed":
            self.outcomes[report.nodeid] = outcome

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self.outcomes:
            return
        tests: dict[str, Any] = {}
        if self.path.is_file():
            try:
                tests = json.loads(self.path.read_text())["tests"]
            except (ValueError, KeyError):
                tests = {}
        for entry in tests.values():
            entry["stale"] = True
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        for node_id, outcome in self.outcomes.items():
            tests[node_id] = {
                "requirements": self.requirements[node_id],
                "outcome": outcome,
                "at": now,
            }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"tests": tests}, indent=1, sort_keys=True) + "\n")
        tmp.replace(self.path)


def _requirement_ids(node: ast.expr) -> Iterator[str]:
    """The ids of ``pytest.mark.requirement("a", "b")`` (or a list of marks)."""
    if isinstance(node, (ast.List, ast.Tuple)):
        for element in node.elts:
            yield from _requirement_ids(element)
    elif (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == MARKER
    ):
        for arg in node.args:
            if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                raise ValueError(f"line {node.lineno}: requirement ids must be strings")
            yield arg.value


def _visit(
    body: list[ast.stmt], prefix: str, inherited: list[str], found: dict[str, set[str]]
) -> None:
    """Add the tests of ``body`` (a module's or a class's) to ``found``."""
    for node in body:
        if isinstance(node, ast.ClassDef):
            ids = [i for d in node.decorator_list for i in _requirement_ids(d)]
            _visit(node.body, f"{prefix}{node.name}::", inherited + ids, found)
        elif isinstance(
            node, (ast.FunctionDef, ast.AsyncFunctionDef)
        ) and node.name.startswith("test"):
            ids = [i for d in node.decorator_list for i in _requirement_ids(d)]
            for rid in inherited + ids:
                found.setdefault(rid, set()).add(f"{prefix}{node.name}")


def scan(tests_dir: Path = ROOT / "tests") -> dict[str, list[str]]:
    """Requirement id -> the test functions whose markers name it."""
    found: dict[str, set[str]] = {}
    for path in sorted(tests_dir.rglob("test_*.py")):
        relative = path.relative_to(tests_dir.parent).as_posix()
        tree = ast.parse(path.read_text(), str(path))
        module_ids = [
            rid
            for node in tree.body
            if isinstance(node, ast.Assign)
            and any(
                isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
            )
            for rid in _requirement_ids(node.value)
        ]
        _visit(tree.body, f"{relative}::", module_ids, found)
    return {rid: sorted(tests) for rid, tests in sorted(found.items())}


def evidence_text(evidence: dict[str, list[str]]) -> str:
    return json.dumps({"requirements": evidence}, indent=1, sort_keys=True) + "\n"


def example_markdown() -> str:
    """``CONFORMANCE.md`` as the CLI prints it for the example app, in a
    fixed environment (no ``.env``, no mail server, throwaway secrets)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TOKENAUTH_", "MAIL_", "FLASK_"))
    }
    env.update(
        ACCESS_TOKEN_SECRET="conformance-report-" + "a" * 48,
        REFRESH_TOKEN_SECRET="conformance-report-" + "b" * 48,
        DATABASE_URL="sqlite://",
        FLASK_SKIP_DOTENV="1",  # flask's own search for .env walks up from cwd
    )
    for name in ("ACCESS_TOKEN_EXPIRES_IN", "REFRESH_TOKEN_EXPIRES_IN"):
        env.pop(name, None)
    flask = [sys.executable, "-m", "flask", "--app", str(ROOT / "examples" / "app.py")]
    done = subprocess.run(
        [*flask, "tokenauth", "conformance", "--markdown"],
        cwd=ROOT / "tests",  # a directory without a .env
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"conformance --markdown failed:\n{done.stderr}")
    return done.stdout


def main(argv: list[str]) -> int:
    if argv != ["--update"]:
        print("usage: python -m tests.conformance --update", file=sys.stderr)
        return 2
    EVIDENCE.write_text(evidence_text(scan()))
    CONFORMANCE_MD.write_text(example_markdown())
    print(f"wrote {EVIDENCE.relative_to(ROOT)} and {CONFORMANCE_MD.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
