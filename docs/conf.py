"""Sphinx configuration of the flask_tokenauth documentation site.

Build it with ``make docs`` (HTML, then the doctests), warnings as errors.
Pages are Markdown (MyST); the API reference comes from the docstrings
(autodoc) and the configuration reference from the settings declaration
(``_ext/tokenauth_config.py`` renders ``flask_tokenauth._config_keys.KEYS``).
Nothing here reaches the network: intersphinx has no mappings on purpose,
since CI reaches only package registries.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(HERE.parent))  # the package and the pytest plugin

import flask_tokenauth  # noqa: E402

project = "flask_tokenauth"
author = "flask_tokenauth contributors"
copyright = "2026, flask_tokenauth contributors"
release = flask_tokenauth.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx.ext.intersphinx",
    "tokenauth_config",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# No inventories: a build never fetches anything (see the module docstring).
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}
intersphinx_disabled_reftypes = ["*"]

# Headings get GitHub's anchors, so a link written for GitHub
# (``signing-keys.md#choosing-an-algorithm``) works on the site too.
myst_heading_anchors = 4
myst_enable_extensions = ["colon_fence", "deflist", "fieldlist"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_preserve_defaults = True

# Nitpicky (-n) reports every reference that resolves nowhere.  Names below
# are third-party (no intersphinx inventories offline) or private helpers
# that appear in signatures of the public API.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(flask|werkzeug|sqlalchemy|blinker|jwt|cryptography|click)\..*"),
    (r"py:.*", r"(datetime|uuid|collections|typing|types|pathlib|email)\..*"),
    (r"py:.*", r"flask_tokenauth\._.*"),
    (r"py:.*", r"(Flask|Response|Blueprint|Engine|HTTPException|Signal|Namespace)"),
    (r"py:.*", r"(FlaskClient|Mapping|Callable|Iterator|Sequence|Any|TypeVar|F)"),
    (r"py:.*", r"(pytest|_pytest|abc|smtplib|email|json|threading)(\..*)?"),
    # Private modules and the type aliases of signatures: not documented.
    (r"py:.*", r"\.{0,2}_\w.*"),
    (r"py:.*", r"(flask_tokenauth\.\w+\.)?(UserT|F|Base|EngineSource|UserLoader)"),
    (r"py:.*", r"(flask_tokenauth\.\w+\.)?(ClaimsLoader|Verifier|OrmSession)"),
    (r"py:.*", r"(flask_tokenauth\.\w+\.)?EmailSource"),
]


html_theme = "furo"
html_title = f"flask_tokenauth {release}"
html_static_path: list[str] = []

# Doctests compare exception messages too (Sphinx's default flags ignore
# them): a sample that shows an error message must show the real one.
import doctest  # noqa: E402

doctest_default_flags = doctest.ELLIPSIS | doctest.DONT_ACCEPT_TRUE_FOR_1
