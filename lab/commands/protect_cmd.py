"""`lab protect`, `lab unprotect`, `lab reveal`: protected mode, which only root turns on, off or looks into."""

from __future__ import annotations

from pathlib import Path

import typer

from lab.commands.common import fail
from lab.grader import admin, protect


def protect_(
    update: bool = typer.Option(False, "--update", help="Install main's current commit (its frozen changes need a meta_journal.md entry)."),
    researcher: str = typer.Option(None, "--researcher", help="The user whose evals go through the grader; default: $SUDO_USER."),
    user: str = typer.Option(admin.DEFAULT_USER, "--grader-user", help="The grader's system user."),
    source: Path = typer.Option(None, "--source", help="The grader's data source (default: its Python's standard library)."),
) -> None:
    """(root) Install the grader as its own user: signed rows, a private test split, one sudoers rule; idempotent."""
    try:
        typer.echo(admin.protect(admin.repo_root(Path.cwd()), researcher, user, source, update))
    except protect.ProtectError as e:
        fail(f"lab protect: {e}", 2)


def unprotect(purge: bool = typer.Option(False, "--purge", help="Also delete the grader's state (its ledger, test scores, key).")) -> None:
    """(root) Turn protected mode off: the sudoers rule, the installation and the grader's user go."""
    try:
        typer.echo(admin.unprotect(admin.repo_root(Path.cwd()), purge))
    except protect.ProtectError as e:
        fail(f"lab unprotect: {e}", 2)


def reveal(slug: str = typer.Argument(..., help="The experiment whose held-out test scores to show.")) -> None:
    """(root) Test vs val bpb of SLUG's runs and the baseline's, from the grader's private state."""
    try:
        where = admin.repo_root(Path.cwd())
        cfg = protect.config(where)
    except protect.ProtectError as e:
        fail(f"lab reveal: {e}", 2)
    if cfg is None:
        fail("lab reveal: this repository is not protected; the test split is scored only by the protected grader", 2)
    try:
        lines = admin.test_scores(cfg, slug)
    except protect.ProtectError as e:
        fail(f"lab reveal: {e}", 2)
    typer.echo("\n".join(lines))
