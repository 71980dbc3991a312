"""What every command module shares: one-line errors and the root checkout."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import typer

from lab import gitx


def fail(message: str, code: int = 1) -> NoReturn:
    """Print `message` on one line to stderr (git's errors span several) and exit with `code`."""
    typer.echo(" ".join(str(message).split()), err=True)
    raise typer.Exit(code)


def root(prefix: str) -> Path:
    """The root checkout, also from inside a worktree; a one-line error outside a git checkout."""
    try:
        return gitx.root_checkout(Path.cwd())
    except gitx.GitError as e:
        fail(f"{prefix}: {e}", 2)
