"""The configuration reference, generated from the settings declaration.

``flask_tokenauth._config_keys.KEYS`` declares every ``TOKENAUTH_*`` key once
(name, default, parser, one-line doc); the directive ``tokenauth-config-keys``
renders each as a ``confval`` entry (an anchor, an index entry, and the
``{confval}`` role for links from other pages).  A key added to the
declaration is documented by the next build, so the reference cannot drift
from the code; ``tests/test_docs.py`` checks :func:`config_reference`'s
output directly, without a build.

The keys' docs are Markdown written with in-page links (``#signing-keys``);
:func:`heading_anchors` finds the page each heading is on, so the links point
into the right page of the site.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from myst_parser.slugs import github_slugify
from sphinx.util.docutils import SphinxDirective

_HEADING = re.compile(r"^(#{1,6}) (.*)$")
_FENCE = re.compile(r"^(```+|~~~+|:::+)")
_LINK = re.compile(r"\]\(#([^)\s]+)\)")


def heading_anchors_of(page: Path) -> list[str]:
    """The GitHub-style anchors of a Markdown page's headings, in order
    (headings inside code fences and directives are not headings)."""
    anchors: list[str] = []
    fence: str | None = None
    for line in page.read_text(encoding="utf-8").splitlines():
        match = _FENCE.match(line)
        if match:
            if fence is None:
                fence = match.group(1)
            elif line.startswith(fence):
                fence = None
            continue
        heading = _HEADING.match(line) if fence is None else None
        if heading:
            anchors.append(github_slugify(heading.group(2).replace("`", "")))
    return anchors


def heading_anchors(srcdir: Path) -> dict[str, str]:
    """Map each heading's anchor to the page (docname) it is on.

    An anchor found on two pages keeps the first (``tests/test_docs.py``
    keeps them unique).
    """
    found: dict[str, str] = {}
    for path in sorted(srcdir.glob("*.md")):
        for anchor in heading_anchors_of(path):
            found.setdefault(anchor, path.stem)
    return found


def link_into_pages(text: str, anchors: Mapping[str, str]) -> str:
    """Point ``[text](#anchor)`` at the page that has the heading.

    :raises KeyError: for an anchor no page has: a broken link in a key's
        doc fails the build here, naming the anchor.
    """

    def point(match: re.Match[str]) -> str:
        anchor = match.group(1)
        if anchor not in anchors:
            raise KeyError(f"no heading of the docs has the anchor #{anchor}")
        return f"]({anchors[anchor]}.md#{anchor})"

    return _LINK.sub(point, text)


def config_reference(keys: Iterable[Any], anchors: Mapping[str, str]) -> str:
    """The reference as MyST Markdown: one ``confval`` entry per key.

    :param keys: :class:`flask_tokenauth._config_keys.Key` objects, in the
        order the page shows them.
    :param anchors: from :func:`heading_anchors`.
    """
    entries = []
    for key in keys:
        default = link_into_pages(key.default_shown(), anchors)
        doc = link_into_pages(key.doc, anchors)
        # The default as a field of the body, not the directive's
        # ``:default:`` option: that one takes no links.
        entries.append(
            f":::{{confval}} {key.full_name}\n\n{doc}\n\n:Default: {default}\n:::\n"
        )
    return "\n".join(entries)


class ConfigKeys(SphinxDirective):
    """``tokenauth-config-keys``: every key of the declaration, in order."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        from flask_tokenauth._config_keys import KEYS

        srcdir = Path(self.env.srcdir)
        # A key's doc changes with the package, not with this page: rebuild
        # the page when the declaration changes.
        import flask_tokenauth._config_keys as declaration

        self.env.note_dependency(str(declaration.__file__))
        try:
            markdown = config_reference(KEYS, heading_anchors(srcdir))
        except KeyError as error:
            # A warning at this page (an error under -W), not a traceback.
            return [self.state.reporter.error(f"a key's doc: {error.args[0]}")]
        container = nodes.container(classes=["tokenauth-config-keys"])
        self.state.nested_parse(
            StringList(markdown.splitlines(), source=self.get_source_info()[0]),
            self.content_offset,
            container,
        )
        return container.children


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("tokenauth-config-keys", ConfigKeys)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
