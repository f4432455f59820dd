"""``client.d.ts`` (the browser client's types, written by hand) against
the OpenAPI description, checked by the TypeScript compiler, not by eye.

openapi-typescript (pinned in ``tests/js/package.json``; ``make js``)
makes TypeScript types of the document an app with every flow on serves;
``tests/js/description/check.ts`` asserts, type by type, that the bodies
and answers client.d.ts declares have the shapes the description gives
(see its header), and ``tsc`` compiles it against the two.  A copy of
client.d.ts broken on purpose must fail the same check, named where it
breaks.

Without Node or the ``make js`` install these skip locally, saying why;
with ``REQUIRE_SERVICES=1`` (CI) they fail.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .conftest import service_missing
from .openapi_helpers import FULL_CONFIG

pytestmark = [pytest.mark.slow, pytest.mark.sqlite]

ROOT = Path(__file__).resolve().parent.parent
JS_DIR = ROOT / "tests" / "js"
CHECK = JS_DIR / "description" / "check.ts"
CLIENT_TYPES = ROOT / "flask_tokenauth" / "static" / "client.d.ts"
TSC = JS_DIR / "node_modules" / "typescript" / "bin" / "tsc"
GENERATOR = JS_DIR / "node_modules" / "openapi-typescript" / "bin" / "cli.js"
TIMEOUT = 120.0


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        service_missing("node is not installed: the type checks need it")
    for tool in (TSC, GENERATOR):
        if not tool.exists():
            service_missing(f"{tool.name} is not installed in {JS_DIR}: run `make js`")
    assert node is not None
    return node


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT
    )


@pytest.fixture(scope="module")
def described_types(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The types openapi-typescript makes of the served description."""
    node = _node()
    workdir = tmp_path_factory.mktemp("client-types")
    document = workdir / "openapi.json"
    document.write_text(json.dumps(_served_document(workdir)))
    types = workdir / "openapi.d.ts"
    # An object schema without members allows any (JSON Schema): unknown,
    # not openapi-typescript's default Record<string, never>.
    command = [node, str(GENERATOR), str(document), "--output", str(types)]
    result = _run([*command, "--empty-objects-unknown"])
    assert result.returncode == 0, result.stdout + result.stderr
    return types


def _served_document(workdir: Path) -> Any:
    """``/api/auth/openapi.json`` of an app with every flow on."""
    from flask import Flask

    from flask_tokenauth import TokenAuth, auth_bp

    from .conftest import base_config

    app = Flask(__name__)
    app.config.update(
        base_config(
            **FULL_CONFIG,
            TOKENAUTH_DATABASE_URL=f"sqlite:///{workdir / 'types.sqlite3'}",
        )
    )
    TokenAuth(app)
    app.register_blueprint(auth_bp)
    response = app.test_client().get("/api/auth/openapi.json")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def type_check(described: Path, client_types: Path, workdir: Path) -> str | None:
    """Compile check.ts against ``described`` and ``client_types``: ``None``
    if it compiles, else tsc's output."""
    config = {
        "compilerOptions": {
            "strict": True,
            "noEmit": True,
            "target": "ES2022",
            "module": "ES2022",
            "moduleResolution": "Bundler",
            "lib": ["DOM", "DOM.Iterable", "ES2022"],
            "types": [],
            # client.d.ts itself is checked by tests/test_js_client.py; here
            # only the assertions of check.ts (and much faster).
            "skipLibCheck": True,
            "exactOptionalPropertyTypes": True,
            "noUnusedLocals": True,
            "paths": {
                "openapi-description": [str(described)],
                "flask-tokenauth-client": [str(client_types)],
            },
        },
        "files": [str(CHECK)],
    }
    tsconfig = workdir / "tsconfig.json"
    tsconfig.write_text(json.dumps(config, indent=1))
    result = _run([_node(), str(TSC), "-p", str(tsconfig), "--pretty", "false"])
    if result.returncode == 0:
        return None
    return result.stdout + result.stderr


def failed_checks(output: str) -> set[str]:
    """The ``export type`` names of check.ts that tsc's errors point into."""
    lines = CHECK.read_text(encoding="utf-8").splitlines()
    names: set[str] = set()
    for match in re.finditer(r"check\.ts\((\d+),\d+\): error", output):
        for line in reversed(lines[: int(match.group(1))]):
            found = re.match(r"export type (\w+)", line)
            if found:
                names.add(found.group(1))
                break
        else:
            names.add(f"line {match.group(1)}")
    return names


def test_client_types_agree_with_the_description(
    described_types: Path, tmp_path: Path
) -> None:
    output = type_check(described_types, CLIENT_TYPES, tmp_path)
    assert output is None, output


#: Breakages of client.d.ts, each with checks it must fail.
BREAKAGES = {
    "member renamed": (
        "  revoked: number;\n}",
        "  revokedCount: number;\n}",
        {"LogoutAll", "LogoutOthers"},
    ),
    "optional member dropped": (
        "  emailVerified?: boolean;\n}",
        "}",
        {
            "UserIsTheUser",
            "LoginAnswerIsLogin",
            "LoginAnswerIsRegister",
            "EmailLoginVerified",
        },
    ),
    "member of another type": (
        "  ipAddress: string | null;",
        "  ipAddress: string;",
        {"Sessions"},
    ),
    "error code missing": ("  | 'SESSION_NOT_FOUND'\n", "", {"ErrorCodes"}),
    "optional in the client, required in the description": (
        "  backedUp: boolean;",
        "  backedUp?: boolean;",
        {"ListPasskeys", "RegisterPasskey", "RenamePasskey"},
    ),
    "body member renamed": (
        "{ recoveryCode: string }",
        "{ recovery_code: string }",
        {"VerifyMfaBody"},
    ),
    "answer of another shape": (
        "  verifyEmail(token: string): Promise<EmailAnswer>;",
        "  verifyEmail(token: string): Promise<FlowAnswer>;",
        {"VerifyEmail"},
    ),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_a_broken_client_types_fails_the_check(
    described_types: Path, tmp_path: Path, breakage: str
) -> None:
    old, new, expected = BREAKAGES[breakage]
    text = CLIENT_TYPES.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} is not in client.d.ts once"
    broken = tmp_path / "client.d.ts"
    broken.write_text(text.replace(old, new))
    output = type_check(described_types, broken, tmp_path)
    assert output is not None, f"{breakage}: the broken copy passed"
    # Refused by the checks that compare what broke (others that use the
    # same type may fail too), not by an error of another kind.
    assert expected <= failed_checks(output), output
    errors = re.findall(r"error (TS\d+)", output)
    assert errors and set(errors) == {"TS2344"}, output
