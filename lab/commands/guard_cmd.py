"""`lab check`, `lab taxonomy`, `lab meta status`: layer 3 of the guard and what it is checking."""

from __future__ import annotations

from pathlib import Path

import typer

from lab import gitx, names, tables, taxonomy
from lab.commands.common import fail, root
from lab.guard import history, meta

meta_app = typer.Typer(help="Meta mode: when frozen files may change.", no_args_is_help=True)


def check(
    revisions: str = typer.Argument("", help="Commit range (e.g. main..exp/foo); default: the current branch since it left main."),
    branch: str = typer.Option("", help="Branch the commits were made on; default: the range's tip branch, else the current one."),
) -> None:
    """Check commits and uncommitted frozen-file changes against the rules (exit 1 on any violation)."""
    cwd, where = Path.cwd(), root("lab check")
    try:
        rev_range = revisions or f"{names.MAIN}..HEAD"
        tip = rev_range.rsplit("..", 1)[-1]
        branch = branch or (tip if tip and gitx.git("branch", "--list", tip, cwd=cwd) else gitx.branch(cwd))
        commits, problems = history.problems_in(cwd, rev_range, branch)
    except gitx.GitError as e:
        fail(f"lab check: {e}", 2)
    state = meta.status(where)
    if not state.on:
        drift = gitx.drift(cwd, "HEAD", taxonomy.patterns_of("FROZEN"))
        problems += [f"uncommitted: {path} is FROZEN and differs from HEAD (restore it: `git checkout -- {path}`)" for path in drift]
    for line in problems:
        typer.echo(line, err=True)
    typer.echo(f"lab check: {len(commits)} commit(s) in {rev_range} on {branch}, {len(problems)} problem(s)")
    raise typer.Exit(1 if problems else 0)


def show_taxonomy() -> None:
    """Print the file taxonomy (lab/taxonomy.json): each path's classes."""
    for line in tables.aligned([(pattern, ", ".join(classes)) for pattern, classes in taxonomy.paths().items()]):
        typer.echo(line)


@meta_app.command("status")
def meta_status() -> None:
    """Say whether META_MODE is on, and why."""
    typer.echo(f"META_MODE {meta.status(root('lab meta')).reason}")
