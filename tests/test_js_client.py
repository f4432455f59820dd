"""The browser client's own checks, run by Node: the unit tests of
``tests/js/client.test.mjs`` (``node --test``) and the TypeScript check of
``client.d.ts`` (``tsc -p tests/js``, over ``tests/js/usage.ts``).

``make js`` installs TypeScript from ``tests/js/package-lock.json``.  Without
Node or that install the two skip locally, saying why; with
``REQUIRE_SERVICES=1`` (CI) they fail.
"""

from __future__ import annotations

import shutil
import subprocess
from importlib.resources import files
from pathlib import Path

import pytest

import flask_tokenauth

from .conftest import service_missing

ROOT = Path(__file__).resolve().parent.parent
JS_DIR = ROOT / "tests" / "js"
TSC = JS_DIR / "node_modules" / ".bin" / "tsc"


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        service_missing(
            "node is not installed: the JS client checks need it; run `make js`"
        )
    assert node is not None
    return node


def _run(args: list[str], timeout: float) -> None:
    try:
        result = subprocess.run(
            args,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as e:
        output = [
            o.decode() if isinstance(o, bytes) else o or ""
            for o in (e.stdout, e.stderr)
        ]
        pytest.fail(
            f"{' '.join(args)} timed out after {timeout} s\n" + "\n".join(output),
            pytrace=False,
        )
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(args)} exited with {result.returncode}\n"
            f"{result.stdout}\n{result.stderr}",
            pytrace=False,
        )


@pytest.mark.slow
def test_node_unit_tests() -> None:
    node = _node()
    _run([node, "--test", "tests/js/"], timeout=120)


@pytest.mark.slow
def test_typescript_declarations() -> None:
    node = _node()
    if not TSC.exists():
        service_missing(f"TypeScript is not installed in {JS_DIR}: run `make js`")
    _run([node, str(TSC), "-p", "tests/js"], timeout=120)


def test_served_file_is_the_packaged_client() -> None:
    """What /client.js serves is what the Node tests import."""
    script = files(flask_tokenauth) / "static" / "client.js"
    assert script.is_file()
    assert "export function createAuthClient" in script.read_text(encoding="utf-8")
    assert (files(flask_tokenauth) / "static" / "client.d.ts").is_file()
    # The Node tests import the checkout's copy; an install must match it.
    checkout = ROOT / "flask_tokenauth" / "static" / "client.js"
    assert script.read_bytes() == checkout.read_bytes()
