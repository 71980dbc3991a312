"""`lab start`, `lab worktrees`, `lab finish`: one git worktree per experiment (5_worktrees/{slug}, exp/{slug})."""

from __future__ import annotations

import warnings
from pathlib import Path

import typer

from lab import gitx, names, tables
from lab.commands.common import fail, root
from lab.loop import ideas
from lab.loop import worktrees as wt  # as wt: `worktrees` names the command below


def _rel(base: Path, path: Path) -> str:
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)


def start(slug: str = typer.Argument(..., help="The critiqued idea's slug; makes 5_worktrees/SLUG on exp/SLUG.")) -> None:
    """Create the idea's worktree on a new branch exp/SLUG from main, and set the idea running."""
    where = root("lab")
    try:
        tree = wt.start(where, slug)
    except (wt.WorktreeError, gitx.GitError) as e:
        fail(f"lab start: {e}")
    typer.echo(f"created {_rel(where, tree.path)} on {tree.branch} from {names.MAIN}; idea {slug!r} is running. "
               f"cd there and edit train.py, commit it, then `just smoke`")


def worktrees() -> None:
    """List the experiment worktrees: slug, branch, commits ahead of main, dirty, ledger rows, path."""
    where = root("lab")
    try:
        trees = wt.list_worktrees(where)
    except (wt.WorktreeError, gitx.GitError) as e:
        fail(f"lab worktrees: {e}")
    if not trees:
        typer.echo("no worktrees (start one with `lab start SLUG`)")
        return
    table = [("slug", "branch", "ahead", "dirty", "rows", "path")]
    table += [(t.slug, t.branch, str(t.ahead), "yes" if t.dirty else "no", str(t.rows), _rel(where, t.path))
              for t in trees]
    for line in tables.aligned(table):
        typer.echo(line)


def finish(
    slug: str = typer.Argument(..., help="The experiment to finish."),
    drop: bool = typer.Option(False, "--drop", help="Set the idea dropped instead of done."),
) -> None:
    """Remove the worktree (only with all work committed), keep its branch, set the idea done (or dropped)."""
    where = root("lab")
    inside = Path.cwd().resolve().is_relative_to(wt.path_of(where, slug).resolve())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", wt.WorktreeWarning)
        try:
            tree = wt.finish(where, slug, drop=drop)
        except (wt.WorktreeError, gitx.GitError) as e:
            fail(f"lab finish: {e}")
    for warning in caught:
        typer.echo(f"warning: {warning.message}", err=True)
    try:
        status = ideas.find(where, slug).status  # may stay `reported`: finish never moves an idea back
    except ideas.IdeaError:
        status = "not marked (see the warning)"
    typer.echo(f"removed {_rel(where, tree.path)}; branch {tree.branch} kept ({tree.ahead} commit(s) ahead of "
               f"{names.MAIN}, {tree.rows} ledger row(s)); idea {slug!r} is {status}")
    if inside:
        typer.echo(f"you were inside it: cd {where}")

