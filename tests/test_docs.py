"""The documentation site (docs/) against the code, without building it
(``make docs`` builds it with warnings as errors and runs its doctests).

The configuration reference is generated at build time from
``flask_tokenauth._config_keys.KEYS`` by ``docs/_ext/tokenauth_config.py``;
these tests call the extension's output function directly, and check that
every ``TOKENAUTH_*`` key the package's code names is in it, that every key
a page names exists, that the public API has an entry in the API reference,
and that the README's links and quickstart still work.
"""

from __future__ import annotations

import importlib.util
import re
import secrets
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from flask import Flask

import flask_tokenauth
from flask_tokenauth._config_keys import KEYS

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
KEY_NAME = re.compile(r"\bTOKENAUTH_[A-Z0-9_]*[A-Z0-9]\b")

#: Names that look like keys and are not, each with the reason.
NOT_KEYS = {
    "TOKENAUTH_PREVIOUS_REFRESH_SECRET": "the environment variable `mfa rekey` reads",
    "TOKENAUTH_ACCESS_EXPIRE": "the typo configuration.md shows being refused",
}


def load_extension() -> ModuleType:
    """docs/_ext/tokenauth_config.py, as Sphinx loads it (by path)."""
    path = DOCS / "_ext" / "tokenauth_config.py"
    spec = importlib.util.spec_from_file_location("tokenauth_config", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def reference() -> str:
    """The configuration reference exactly as the build renders it."""
    ext = load_extension()
    return str(ext.config_reference(KEYS, ext.heading_anchors(DOCS)))


def documented_keys(markdown: str) -> list[str]:
    return re.findall(r"^:::\{confval\} (TOKENAUTH_\w+)$", markdown, re.MULTILINE)


def named_keys(paths: list[Path]) -> dict[str, set[str]]:
    """Every ``TOKENAUTH_*`` name in these files, with the files naming it."""
    found: dict[str, set[str]] = {}
    for path in paths:
        for name in KEY_NAME.findall(path.read_text(encoding="utf-8")):
            found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def test_the_configuration_page_renders_the_reference() -> None:
    page = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert "```{tokenauth-config-keys}\n```" in page
    conf = (DOCS / "conf.py").read_text(encoding="utf-8")
    assert '"tokenauth_config"' in conf


def test_every_declared_key_is_in_the_reference_once(reference: str) -> None:
    documented = documented_keys(reference)
    assert documented == [key.full_name for key in KEYS]
    for key in KEYS:
        entry = reference.split(f":::{{confval}} {key.full_name}\n", 1)[1]
        entry = entry.split("\n:::\n", 1)[0]
        assert key.doc.split("](")[0] in entry  # its meaning ...
        assert ":Default: " in entry  # ... and its default


def test_every_key_the_code_names_is_in_the_reference(reference: str) -> None:
    """A key read anywhere in the package (a ``config.get("TOKENAUTH_X")``
    beside the declaration, a name in a message) must be documented."""
    code = sorted(
        [
            *(ROOT / "flask_tokenauth").rglob("*.py"),
            ROOT / "pytest_flask_tokenauth.py",
            *(ROOT / "flask_tokenauth" / "static").glob("*.js"),
        ]
    )
    documented = set(documented_keys(reference))
    missing = {
        name: files
        for name, files in named_keys(code).items()
        if name not in documented and name not in NOT_KEYS
    }
    assert missing == {}, "undocumented TOKENAUTH_* keys (add them to KEYS)"


def test_every_key_a_page_names_exists(reference: str) -> None:
    """A page that names a key that was renamed or removed fails here."""
    pages = [*sorted(DOCS.glob("*.md")), ROOT / "README.md"]
    documented = set(documented_keys(reference))
    unknown = {
        name: files
        for name, files in named_keys(pages).items()
        if name not in documented and name not in NOT_KEYS
    }
    assert unknown == {}


def test_links_in_key_docs_point_into_the_pages() -> None:
    ext = load_extension()
    anchors = ext.heading_anchors(DOCS)
    assert anchors["signing-keys"] == "signing-keys"
    assert anchors["which-database"] == "configuration"
    text = "see [Rate limiting](#rate-limiting))."
    assert ext.link_into_pages(text, anchors) == (
        "see [Rate limiting](rate-limiting.md#rate-limiting))."
    )
    with pytest.raises(KeyError, match="#no-such-heading"):
        ext.link_into_pages("[x](#no-such-heading)", anchors)


def test_heading_anchors_are_unique_across_pages() -> None:
    """A link ``page.md#anchor`` is unambiguous only if no two pages share an
    anchor (the key docs' links are resolved by anchor alone)."""
    ext = load_extension()
    seen: dict[str, list[str]] = {}
    for page in sorted(DOCS.glob("*.md")):
        for anchor in ext.heading_anchors_of(page):
            seen.setdefault(anchor, []).append(page.stem)
    assert {a: p for a, p in seen.items() if len(p) > 1} == {}


def api_reference_names() -> set[str]:
    """Names given an entry in docs/api.md: ``auto...::``/``py:...::``
    directives under ``currentmodule:: flask_tokenauth``, and the members
    of the modules it documents with ``automodule``."""
    text = (DOCS / "api.md").read_text(encoding="utf-8")
    names = set(
        re.findall(
            r"^\.\. (?:auto\w+|py:\w+):: (?:flask_tokenauth\.)?(\w+)$",
            text,
            re.MULTILINE,
        )
    )
    for module_name, members in re.findall(
        r"^\.\. automodule:: ([\w.]+)\n((?:   :.*\n)*)", text, re.MULTILINE
    ):
        module = sys.modules.get(module_name) or importlib.import_module(module_name)
        listed = re.search(r":members: (.+)", members)
        if listed:
            names |= {name.strip() for name in listed.group(1).split(",")}
        elif ":members:" in members:
            names |= {
                name
                for name, value in vars(module).items()
                if not name.startswith("_")
                and getattr(value, "__module__", None) == module_name
            }
        names.add(module_name.rsplit(".", 1)[-1])
    return names


def test_every_public_name_is_in_the_api_reference() -> None:
    missing = sorted(set(flask_tokenauth.__all__) - api_reference_names())
    assert missing == []


def test_every_page_is_in_a_toctree() -> None:
    """Sphinx warns (an error with -W) about a page outside every toctree;
    this says which, without a build."""
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^([a-z-]+)$", index, re.MULTILINE))
    pages = {p.stem for p in DOCS.glob("*.md")} | {p.stem for p in DOCS.glob("*.rst")}
    assert pages - {"index"} <= listed


def test_readme_links_point_at_files() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    local = [t for t in targets if "://" not in t]
    assert local, "the README links into the docs"
    assert [t for t in local if not (ROOT / t).exists()] == []
    assert {"docs/quickstart.md", "docs/configuration.md", "docs/api.md"} <= set(local)


def test_the_readme_quickstart_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's ten lines, run as they are: the secrets from the
    environment, the tables by the command it names, a user's profile."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    code = readme.split("```python\n", 1)[1].split("```", 1)[0]
    assert len(code.strip().splitlines()) <= 12
    monkeypatch.setenv("FLASK_TOKENAUTH_ACCESS_SECRET", secrets.token_urlsafe(48))
    monkeypatch.setenv("FLASK_TOKENAUTH_REFRESH_SECRET", secrets.token_urlsafe(48))
    monkeypatch.setenv("FLASK_TOKENAUTH_DATABASE_URL", f"sqlite:///{tmp_path}/q.db")
    monkeypatch.setenv("FLASK_TOKENAUTH_BCRYPT_ROUNDS", "4")
    namespace: dict[str, Any] = {"__name__": "yourapp"}
    exec(compile(code, "README.md", "exec"), namespace)
    app: Flask = namespace["app"]
    assert "flask tokenauth db upgrade" in readme.replace("--app yourapp ", "")
    result = app.test_cli_runner().invoke(args=["tokenauth", "db", "upgrade"])
    assert result.exit_code == 0, result.output
    client = app.test_client()
    body = {"email": "ada@example.com", "password": "correct horse battery"}
    token = client.post("/api/auth/register", json=body).json["accessToken"]  # type: ignore[index]
    profile = client.get("/api/profile", headers={"Authorization": f"Bearer {token}"})
    assert profile.json == {"user": {"id": 1, "email": "ada@example.com"}}
    assert client.get("/api/profile").status_code == 401
