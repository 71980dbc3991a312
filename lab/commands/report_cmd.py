"""`lab report SLUG`: write 9_reports/{date}_{slug}.md pre-filled from the idea and results.tsv."""

from __future__ import annotations

from pathlib import Path

import typer

from lab import gitx
from lab.loop import ideas, reports

app = typer.Typer(help="Write an experiment's report, pre-filled from its idea and its runs.", no_args_is_help=True)


@app.command()
def report(
    slug: str = typer.Argument(..., help="The experiment's slug: its idea in 1_ideas/, its rows in results.tsv."),
) -> None:
    """Write 9_reports/{date}_{slug}.md in the root checkout and print its path; fill in the TODOs."""
    try:
        path = reports.write(gitx.root_checkout(Path.cwd()), slug, warn=lambda line: typer.echo(line, err=True))
    except (gitx.GitError, reports.ReportError, ideas.IdeaError) as e:
        typer.echo(f"lab report: {e}", err=True)
        raise typer.Exit(1) from None
    typer.echo(str(path))


if __name__ == "__main__":
    app()
