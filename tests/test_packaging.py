"""The built wheel: it is the distribution ``flask-tokenauth-jwt`` (the
import name is ``flask_tokenauth``; ``flask-tokenauth`` on the package index
is another project), it ships ``py.typed``, the pytest plugin and the
migrations (the top-level ``alembic/`` folder, as
``flask_tokenauth.migrations``), and an app that installed it can run them.

The wheel is built from a copy of the checkout's files (tracked and untracked,
minus what ``.gitignore`` ignores), so ``build/`` and ``*.egg-info`` never land
in the working tree.
"""

from __future__ import annotations

import configparser
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from flask_tokenauth import ConfigurationError
from flask_tokenauth._migrate import VERSION_TABLE

from .conftest import ACCESS_SECRET, PASSWORD, REDIS_URL, REFRESH_SECRET

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
#: The distribution's name: not the import name, and not taken on the index.
DISTRIBUTION = "flask-tokenauth-jwt"


def run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        args, capture_output=True, text=True, timeout=120, check=False, **kwargs
    )  # type: ignore[call-overload]
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result  # type: ignore[no-any-return]


def copy_checkout(dest: Path) -> None:
    listed = run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
    ).stdout
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():  # a tracked file may have been deleted
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("git") is None:
        pytest.skip("git is needed to list the checkout's files")
    source = tmp_path_factory.mktemp("source")
    dist = tmp_path_factory.mktemp("dist")
    copy_checkout(source)
    # No isolation: the build requirements (setuptools, wheel) are installed
    # here already, and the test must not need the network.
    run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(dist),
            str(source),
        ],
    )
    (built,) = dist.glob("flask_tokenauth_jwt-*.whl")
    return built


@pytest.mark.parametrize(
    "pattern",
    [
        "flask_tokenauth/__init__.py",
        "flask_tokenauth/py.typed",
        "flask_tokenauth/views/auth.py",
        "flask_tokenauth/static/client.js",
        "flask_tokenauth/static/client.d.ts",
        "flask_tokenauth/data/common-passwords.txt.gz",
        "flask_tokenauth/data/README.txt",
        "flask_tokenauth/data/conformance-evidence.json",
        "flask_tokenauth/migrations/env.py",
        "flask_tokenauth/migrations/script.py.mako",
        "flask_tokenauth/migrations/versions/0001_*.py",
        "flask_tokenauth/testing.py",
        "flask_tokenauth/mail.py",
        "flask_tokenauth/templates/tokenauth/mail/layout.html",
        "flask_tokenauth/templates/tokenauth/mail/layout.txt",
        "flask_tokenauth/templates/tokenauth/mail/button.html",
        "flask_tokenauth/templates/tokenauth/mail/test.subject.txt",
        "pytest_flask_tokenauth.py",
    ],
)
def test_wheel_contains(wheel: Path, pattern: str) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert fnmatch.filter(names, pattern), names


def test_wheel_ships_every_revision_and_no_top_level_alembic(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    revisions = sorted((REPO / "alembic" / "versions").glob("*.py"))
    for path in revisions:
        assert f"flask_tokenauth/migrations/versions/{path.name}" in names
    # A top-level ``alembic`` package would shadow the Alembic library.
    assert not [name for name in names if name.startswith("alembic/")]
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "tokenauth = flask_tokenauth.cli:tokenauth_cli" in text
    assert "[pytest11]\nflask_tokenauth = pytest_flask_tokenauth" in text


def test_wheel_is_the_distribution_of_our_own_name(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    headers = zipfile.ZipFile(wheel).read(metadata).decode().split("\n\n")[0]
    assert f"Name: {DISTRIBUTION}" in headers.splitlines()


def test_the_redis_hint_names_the_distribution(
    make_app: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hint of a configuration error names what to install: this
    distribution's extra, not the unrelated ``flask_tokenauth`` of the index."""
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    assert setup["metadata"]["name"] == DISTRIBUTION
    monkeypatch.setitem(sys.modules, "redis", None)  # not installed

    with pytest.raises(ConfigurationError) as raised:
        make_app(TOKENAUTH_REDIS_URL=REDIS_URL)  # type: ignore[operator]

    message = str(raised.value)
    assert "TOKENAUTH_REDIS_URL" in message
    assert f"'{DISTRIBUTION}[redis]'" in message
    assert "flask_tokenauth[" not in message


APP = """\
from flask import Flask

from flask_tokenauth import auth_bp

app = Flask(__name__)
app.config.from_prefixed_env()  # FLASK_TOKENAUTH_* -> TOKENAUTH_*
app.register_blueprint(auth_bp)
"""

CHECK = """\
import json

import flask_tokenauth
from flask_tokenauth import _migrate

from wheelapp import app

credentials = {{"email": "wheel@example.com", "password": {password!r}}}
response = app.test_client().post("/api/auth/register", json=credentials)
script = app.test_client().get("/api/auth/client.js")
print(json.dumps({{
    "client": [script.status_code, b"export function createAuthClient" in script.data],
    "file": flask_tokenauth.__file__,
    "script_location": _migrate.script_location(),
    "status": response.status_code,
}}))
"""


def test_installed_wheel_runs_migrations(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--disable-pip-version-check",
            "--target",
            str(target),
            str(wheel),
        ],
    )
    workdir = tmp_path / "app"  # outside the checkout
    workdir.mkdir()
    (workdir / "wheelapp.py").write_text(APP)
    (workdir / "check.py").write_text(CHECK.format(password=PASSWORD))
    database = tmp_path / "wheel.sqlite3"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("FLASK_", "TOKENAUTH_", "PYTHON"))
        and key != "DATABASE_URL"
    }
    env.update(
        PYTHONPATH=str(target),
        FLASK_TOKENAUTH_ACCESS_SECRET=ACCESS_SECRET,
        FLASK_TOKENAUTH_REFRESH_SECRET=REFRESH_SECRET,
        FLASK_TOKENAUTH_DATABASE_URL=f"sqlite:///{database}",
        FLASK_TOKENAUTH_BCRYPT_ROUNDS="4",
    )

    upgraded = run(
        [
            sys.executable,
            "-m",
            "flask",
            "--app",
            "wheelapp",
            "tokenauth",
            "db",
            "upgrade",
        ],
        cwd=workdir,
        env=env,
    )
    assert "upgraded to head" in upgraded.stdout

    engine = create_engine(f"sqlite:///{database}")
    try:
        assert {"tokenauth_users", "tokenauth_refresh_tokens", VERSION_TABLE} <= set(
            inspect(engine).get_table_names()
        )
    finally:
        engine.dispose()

    checked = run([sys.executable, "check.py"], cwd=workdir, env=env)
    report = json.loads(checked.stdout.strip().splitlines()[-1])
    assert Path(report["file"]).is_relative_to(target), report
    assert not Path(report["file"]).is_relative_to(REPO), report
    assert Path(report["script_location"]).is_relative_to(target), report
    assert (Path(report["script_location"]) / "env.py").is_file()
    assert report["status"] == 201, report
    assert report["client"] == [200, True], report
