"""`lab status`, `lab next`, `lab digest`: where the research stands, and what to do next."""

from __future__ import annotations

import json
from dataclasses import asdict

import typer

from lab import gitx, tables
from lab.commands.common import fail, root
from lab.loop import overnight
from lab.loop import status as core


def status(as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON.")) -> None:
    """Meta mode, ideas, worktrees, baseline, verdicts, proposed merges, latest runs, warnings and the next step."""
    s = _summary()
    night = overnight.status_line(root("lab"))
    if as_json:
        typer.echo(json.dumps(asdict(s) | {"overnight": night}, indent=2))
        return
    typer.echo(s.mode)
    typer.echo(f"META_MODE {s.meta}")
    typer.echo("ideas: " + ", ".join(f"{n} {k}" for k, n in s.ideas.items() if n) if any(s.ideas.values()) else "ideas: none yet")
    trees = [("worktree", t["slug"], t["branch"], "ahead", str(t["ahead"]), "dirty" if t["dirty"] else "clean",
              "rows", str(t["rows"])) for t in s.worktrees]
    for line in tables.aligned(trees, right={4}):
        typer.echo(line)
    typer.echo(core.baseline_line(s.baseline))
    typer.echo(core.best_line(s.best))
    for slug, line in s.effects.items():
        typer.echo(f"verdict {slug}: {line}")
    if s.proposed_merges:
        typer.echo("proposed merges (the human's call, `lab merge SLUG` in META_MODE): " + ", ".join(s.proposed_merges))
    flying = ", ".join(f"{n} {slug}" for slug, n in s.in_flight.items())
    typer.echo(f"runs: {s.runs}" + (f" ({flying} in flight)" if flying else ""))
    latest = [(r["run_id"], r["slug"], "seed", r["seed"], r["budget"], r["status"], r["val_bpb"] or r["reason"][:50])
              for r in s.latest]
    for line in tables.aligned(latest, right={3, 4}):
        typer.echo(f"  {line}")
    for w in s.warnings:
        typer.echo(f"warning: {w}")
    if night:
        typer.echo(night)
    typer.echo(f"next: {s.next_step}")


def _summary() -> core.Summary:
    try:
        return core.summarize(root("lab"))
    except (ValueError, gitx.GitError) as e:
        fail(f"lab: {e}")


def next_(as_json: bool = typer.Option(False, "--json", help="kind, say and command as JSON.")) -> None:
    """The single next step of program.md's loop, with the command to run when one line does it."""
    s = _summary()
    typer.echo(json.dumps(s.step) if as_json else s.next_step)


def digest() -> None:
    """What to read at the start of every cycle (at most 4,000 characters)."""
    try:
        typer.echo(core.digest(root("lab")), nl=False)
    except (ValueError, gitx.GitError) as e:
        fail(f"lab: {e}")
