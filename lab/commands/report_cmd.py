"""`lab report SLUG`: write 9_reports/{date}_{slug}.md pre-filled from the idea and results.tsv."""

from __future__ import annotations

import typer

from lab import gitx
from lab.commands.common import fail, root
from lab.loop import ideas, reports


def report(
    slug: str = typer.Argument(..., help="The experiment's slug: its idea in 1_ideas/, its rows in results.tsv."),
) -> None:
    """Write 9_reports/{date}_{slug}.md in the root checkout and print its path; fill in the TODOs."""
    where = root("lab report")
    try:
        path = reports.write(where, slug, warn=lambda line: typer.echo(line, err=True))
    except (gitx.GitError, reports.ReportError, ideas.IdeaError) as e:
        fail(f"lab report: {e}")
    typer.echo(str(path))
