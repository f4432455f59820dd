"""``flask tokenauth conformance``: which requirements of a standard this app
meets, the tests that prove each, and why the others do not apply.

It runs in the app's context, so applicability follows the app's own
settings (a flow it turned off, a cookie without the ``__Host-`` prefix).
The evidence is the one shipped with the package (see :mod:`._conformance`);
the outcomes come from ``--results``, the file the test suite writes.
"""

from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from ._conformance import (
    context_of,
    evaluate,
    load_evidence,
    load_results,
    problems,
    render_markdown,
    render_text,
)
from ._conformance_catalog import PROFILES
from ._state import get_state

DEFAULT_RESULTS = Path("test-artifacts") / "conformance-results.json"


@click.command("conformance")
@click.option(
    "--profile",
    "profiles",
    multiple=True,
    type=click.Choice(list(PROFILES)),
    help="The profile(s) to report on (repeatable; default: all).",
)
@click.option(
    "--results",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_RESULTS,
    show_default=True,
    help="The outcomes the test suite recorded.",
)
@click.option(
    "--check",
    is_flag=True,
    help="Exit 1 if an applicable requirement has no passing test.",
)
@click.option(
    "--markdown",
    is_flag=True,
    help="Print CONFORMANCE.md (requirements and tests, no outcomes).",
)
@with_appcontext
def conformance_cli(
    profiles: tuple[str, ...], results: Path, check: bool, markdown: bool
) -> None:
    """Report which requirements of a profile this app meets and which tests
    prove them (OWASP ASVS 5.0, NIST SP 800-63B-4, RFCs)."""
    try:
        state = get_state(current_app)
    except RuntimeError as e:
        raise click.ClickException(str(e)) from None
    context = context_of(state)
    evidence = load_evidence()
    chosen = list(profiles or PROFILES)
    if markdown:
        sections = [(p, evaluate(p, context, evidence, None)) for p in chosen]
        click.echo(render_markdown(sections, current_app.import_name), nl=False)
        return
    outcomes = None
    if results.is_file():
        try:
            outcomes = load_results(results)
        except ValueError as e:
            raise click.ClickException(str(e)) from None
    elif check:
        raise click.ClickException(
            f"No test results at {results}: run the test suite first (pytest writes"
            " them), or name the file with --results."
        )
    failures = []
    for profile in chosen:
        rows = evaluate(profile, context, evidence, outcomes or {})
        click.echo(render_text(profile, rows))
        failures += [f"{profile}: {p}" for p in problems(rows)]
    if outcomes is None:
        click.echo(f"(no test results at {results}: every test shows as not run)")
    if check and failures:
        raise click.ClickException(
            f"{len(failures)} applicable requirement(s) without a passing test:\n  "
            + "\n  ".join(failures)
        )
