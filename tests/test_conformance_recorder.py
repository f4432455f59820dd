"""The conformance report's side of the test suite (``tests/conformance.py``):
the scan that reads the markers from source, and the recorder that writes
each marked test's outcome, merging a partial run into the last one."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from flask_tokenauth import _conformance as conformance
from flask_tokenauth._config import Settings
from flask_tokenauth._conformance_catalog import Context

from . import conformance as suite
from .conftest import base_config


def context() -> Context:
    return Context(Settings.from_mapping(base_config()))


def test_the_scan_reads_functions_classes_and_module_marks(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text(
        textwrap.dedent(
            """
            import pytest
            pytestmark = [pytest.mark.requirement("M")]

            @pytest.mark.parametrize("a", [1])
            @pytest.mark.requirement("A", "B")
            def test_a(a): ...

            def test_plain(): ...

            @pytest.mark.requirement("C")
            class TestC:
                @pytest.mark.requirement("D")
                def test_d(self): ...
            """
        )
    )
    found = suite.scan(tmp_path / "tests")
    a, plain, d = (
        f"tests/test_x.py::{t}" for t in ("test_a", "test_plain", "TestC::test_d")
    )
    assert found == {"A": [a], "B": [a], "C": [d], "D": [d], "M": sorted([a, d, plain])}


# The recorder, in a pytest run of its own.

TESTS = """
import pytest

@pytest.mark.requirement("R-1")
@pytest.mark.parametrize("n", [1, 2])
def test_passes(n):
    pass

@pytest.mark.requirement("R-2")
def test_fails():
    assert False

@pytest.mark.requirement("R-3")
def test_skips():
    pytest.skip("no reason")

@pytest.fixture
def broken():
    raise RuntimeError

@pytest.mark.requirement("R-4")
def test_setup_error(broken):
    pass

def test_unmarked():
    pass
"""


def run_pytest(where: Path, *args: str) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:randomly",
            "-p",
            "no:cacheprovider",
            *args,
        ],
        cwd=where,
        env={"PYTHONPATH": str(suite.ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        check=False,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nmarkers =\n    requirement(*ids): proves\n"
    )
    (tmp_path / "conftest.py").write_text(
        "from tests.conformance import ResultsRecorder\n\n"
        "def pytest_configure(config):\n"
        "    config.pluginmanager.register(ResultsRecorder(config))\n"
    )
    (tmp_path / "test_a.py").write_text(TESTS)
    return tmp_path


def recorded(project: Path) -> dict[str, Any]:
    path = project / "test-artifacts" / "conformance-results.json"
    tests: dict[str, Any] = json.loads(path.read_text())["tests"]
    return tests


def test_the_recorder_writes_each_marked_tests_outcome(project: Path) -> None:
    run_pytest(project)
    tests = recorded(project)
    assert {k: (v["outcome"], v["requirements"]) for k, v in tests.items()} == {
        "test_a.py::test_passes[1]": ("passed", ["R-1"]),
        "test_a.py::test_passes[2]": ("passed", ["R-1"]),
        "test_a.py::test_fails": ("failed", ["R-2"]),
        "test_a.py::test_skips": ("skipped", ["R-3"]),
        "test_a.py::test_setup_error": ("failed", ["R-4"]),
    }
    assert not any(v.get("stale") for v in tests.values())
    summary = conformance.load_results(
        project / "test-artifacts" / "conformance-results.json"
    )
    assert summary == {
        "test_a.py::test_passes": "passed",
        "test_a.py::test_fails": "failed",
        "test_a.py::test_skips": "skipped",
        "test_a.py::test_setup_error": "failed",
    }


def test_a_partial_run_merges_and_marks_the_rest_stale(project: Path) -> None:
    run_pytest(project)
    (project / "test_a.py").write_text(TESTS.replace("assert False", "pass"))
    run_pytest(project, "-k", "test_fails")
    tests = recorded(project)
    assert tests["test_a.py::test_fails"]["outcome"] == "passed"
    assert "stale" not in tests["test_a.py::test_fails"]
    assert tests["test_a.py::test_skips"] == {
        **tests["test_a.py::test_skips"],
        "outcome": "skipped",
        "stale": True,
    }
    summary = conformance.load_results(
        project / "test-artifacts" / "conformance-results.json"
    )
    assert summary["test_a.py::test_fails"] == "passed"
    assert summary["test_a.py::test_passes"] == "passed, earlier run"
    rows = conformance.evaluate(
        "asvs-l1", context(), {"ASVS-5.0-6.3.2": ["test_a.py::test_passes"]}, summary
    )
    [row] = [r for r in rows if r.requirement.id == "ASVS-5.0-6.3.2"]
    assert row.proven and conformance.problems([row]) == []
