"""`lab status`, `lab next`, `lab digest`: where the research stands, and what to do next."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import typer

from lab import status as core
from lab.commands.common import root


def _root() -> Path:
    return root("lab")


def status(as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON.")) -> None:
    """Meta mode, ideas, worktrees, latest runs, best vs baseline, warnings and the next step."""
    s = core.summarize(_root())
    if as_json:
        typer.echo(json.dumps(asdict(s), indent=2))
        return
    typer.echo(f"META_MODE {s.meta}")
    typer.echo("ideas: " + ", ".join(f"{n} {k}" for k, n in s.ideas.items() if n) if any(s.ideas.values()) else "ideas: none yet")
    for t in s.worktrees:
        typer.echo(f"worktree {t['slug']:24s} {t['branch']:28s} ahead {t['ahead']:3d}  {'dirty' if t['dirty'] else 'clean'}  rows {t['rows']}")
    for slug, line in s.verdicts.items():
        typer.echo(f"verdict {slug}: {line}")
    b = s.baseline
    typer.echo(f"baseline: val_bpb {b['mean']:.4f} ± {b['std']:.4f} (n={b['n']}, budget {b['budget_s']}s)" if b else "baseline: none yet")
    if s.best:
        delta = f" ({s.best['delta']:+.4f} vs baseline)" if s.best["delta"] is not None else ""
        typer.echo(f"best: {s.best['slug']} val_bpb {s.best['val_bpb']:.4f}{delta}, run {s.best['run_id']}")
    typer.echo(f"runs: {s.runs}")
    for r in s.latest:
        typer.echo(f"  {r['run_id']:24s} {r['slug']:20s} seed {r['seed']:>3s} {r['status']:8s} {r['val_bpb'] or r['reason'][:50]}")
    for w in s.warnings:
        typer.echo(f"warning: {w}")
    typer.echo(f"next: {s.next_step}")


def next_(ideas: int = typer.Option(30, "--ideas", help="Critiqued ideas to keep waiting before implementing.")) -> None:
    """The single next step of program.md's loop."""
    typer.echo(core.summarize(_root(), want_waiting=ideas).next_step)


def digest() -> None:
    """What to read at the start of every cycle (at most 4,000 characters)."""
    typer.echo(core.digest(_root()), nl=False)
