"""`lab journal add`: a dated entry on top of the root checkout's RESEARCH_JOURNAL.md."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from lab import gitx
from lab.commands.common import fail, root
from lab.loop import journal

app = typer.Typer(help="The research journal (RESEARCH_JOURNAL.md), newest entry on top.", no_args_is_help=True)


@app.command()
def add(
    title: str = typer.Argument(..., help="One line, at most 120 characters."),
    body: str | None = typer.Option(None, "--body", help="The entry's text; default: read from stdin. "
                                    "Needs an **Observation:** and an **Inference:** line; cite runs by run_id."),
    source: Path | None = typer.Option(None, "--from", help="A file holding the entry's text."),
) -> None:
    """Add a dated entry at the top of the ROOT checkout's journal (also from a worktree)."""
    if body is not None and source is not None:
        fail("lab journal: --body and --from both given: the entry's text comes from one of them")
    if source is not None:
        try:
            body = source.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            fail(f"lab journal: --from {source}: cannot read it ({e.strerror if isinstance(e, OSError) else e})")
    if body is None:
        if sys.stdin.isatty():
            fail(f"lab journal: no body: pass --body TEXT or pipe it on stdin, written as {journal.FORMAT}")
        body = sys.stdin.read()
    where = root("lab journal")
    try:
        entry = journal.add(where, title, body)
    except (gitx.GitError, journal.JournalError) as e:
        fail(f"lab journal: {e}")
    typer.echo(entry.splitlines()[0])

