"""The package imports without circles: no module of ``flask_tokenauth``
imports (at the top or inside a function) a module that imports it back,
directly or through others.  Imports under ``TYPE_CHECKING``
are left out: they never run.

And the examples use only the public API, type-checked strictly."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import flask_tokenauth

PACKAGE = Path(flask_tokenauth.__file__).parent
NAME = "flask_tokenauth"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported(
    node: ast.AST, current: str, is_package: bool, modules: set[str]
) -> set[str]:
    """The modules of ours that the imports under ``node`` name."""
    found: set[str] = set()
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and is_type_checking(child):
            for other in child.orelse:
                found |= imported(other, current, is_package, modules)
            continue
        if isinstance(child, ast.Import):
            found |= {a.name for a in child.names if a.name.split(".")[0] == NAME}
        elif isinstance(child, ast.ImportFrom):
            if child.level:
                base = current.split(".")
                base = base[: len(base) - child.level + (1 if is_package else 0)]
                target = ".".join([*base, *([child.module] if child.module else [])])
            else:
                target = child.module or ""
            if target.split(".")[0] != NAME:
                continue
            # ``from . import signals`` imports the module ``signals``; a
            # name that is no module is read from ``target`` itself.
            names = {f"{target}.{alias.name}" for alias in child.names}
            found |= names & modules
            if names - modules:
                found.add(target)
        found |= imported(child, current, is_package, modules)
    return found


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(paths)
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        targets = imported(tree, name, path.name == "__init__.py", modules)
        edges = set()
        ancestors = {
            ".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)
        }
        edges = set()
        for target in targets:
            # ``import a.b.c`` runs a, a.b and a.b.c; but the packages this
            # module is in are already being imported when it runs, and are
            # needed only if a name is read from them (``target`` itself).
            parts = target.split(".")
            prefixes = {".".join(parts[:i]) for i in range(1, len(parts))}
            edges |= {target} | (prefixes - ancestors)
        graph[name] = {t for t in edges if t in modules and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` as the list of its modules, first one repeated."""
    done: set[str] = set()
    path: list[str] = []
    on_path: set[str] = set()

    def visit(node: str) -> list[str] | None:
        path.append(node)
        on_path.add(node)
        for nxt in sorted(graph[node]):
            if nxt in on_path:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in done:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        on_path.discard(node)
        done.add(node)
        return None

    for start in sorted(graph):
        if start not in done:
            cycle = visit(start)
            if cycle:
                return cycle
    return None


def test_the_graph_sees_every_kind_of_import() -> None:
    graph = import_graph()
    assert "flask_tokenauth.views.auth" in graph["flask_tokenauth.views"]
    assert "flask_tokenauth._state" in graph["flask_tokenauth.views.auth"]
    assert "flask_tokenauth.signals" in graph["flask_tokenauth._sessions"]


def test_find_cycle_reports_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles_in_the_package() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def private_imports(tree: ast.AST) -> list[str]:
    """The private modules of ours an example's code imports: ``import
    flask_tokenauth._x``, ``from flask_tokenauth._x import y``, ``from
    flask_tokenauth import _x``, at any depth (``TYPE_CHECKING`` included:
    a reader copies those too)."""
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == NAME and any(p.startswith("_") for p in parts[1:]):
                found.append(name)
    return found


def test_private_imports_are_seen() -> None:
    tree = ast.parse(
        "import flask_tokenauth._db\n"
        "from flask_tokenauth._state import get_state\n"
        "from flask_tokenauth import _passwords, auth_bp\n"
        "from flask_tokenauth.testing import TokenAuthClient\n"
    )
    assert private_imports(tree) == [
        "flask_tokenauth._db",
        "flask_tokenauth._state",
        "flask_tokenauth._state.get_state",
        "flask_tokenauth._passwords",
    ]


def test_examples_use_only_the_public_api() -> None:
    """What the examples import, the apps that copy them import: never a
    private module, whose names may change in any release."""
    paths = sorted(EXAMPLES.rglob("*.py"))
    assert paths
    found = {
        str(path.relative_to(EXAMPLES)): imports
        for path in paths
        if (imports := private_imports(ast.parse(path.read_text(encoding="utf-8"))))
    }
    assert found == {}


def test_mypy_checks_the_examples_strictly() -> None:
    """A host model must type-check against our API (``current_user_as``):
    CI's strict mypy run covers the examples, not only the package."""
    tomllib = pytest.importorskip("tomllib")
    pyproject = EXAMPLES.parent / "pyproject.toml"
    mypy = tomllib.loads(pyproject.read_text(encoding="utf-8"))["tool"]["mypy"]
    assert mypy["strict"] is True
    assert {"examples/app.py", "examples/existing_app"} <= set(mypy["files"])


def test_every_module_is_in_the_docs_layout_table() -> None:
    """A newcomer finds each module's job in the docs' "Development" page
    (docs/development.md): a module added without a row there fails here."""
    root = Path(__file__).resolve().parent.parent
    readme = (root / "docs" / "development.md").read_text(encoding="utf-8")
    start = readme.index("| module | job |")
    table = readme[start : readme.index("\n\n", start)]
    modules = sorted(p.name for p in (root / "flask_tokenauth").glob("*.py"))
    assert [m for m in modules if f"`{m}`" not in table] == []
