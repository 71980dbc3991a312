"""`lab queue SLUG …`, `lab queue status`, `lab wait`, `lab setup`: the GPU queue on pueue."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
import typer
from typer.core import TyperGroup

from lab import gitx, jobs, ledger, tables
from lab.commands.common import fail, root
from lab.queue import pueue
from lab.queue import queue as core


class _AddByDefault(TyperGroup):
    """`lab queue SLUG …` means `lab queue add SLUG …`; `lab queue status` stays a subcommand."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["add", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(cls=_AddByDefault, no_args_is_help=True, add_completion=False,
                  help="Queue labelled GPU jobs on pueue: `lab queue SLUG --q … --h …`, `lab queue status`.")


@app.command(context_settings={"help_option_names": ["-h", "--help"]})
def add(
    slug: str = typer.Argument(..., help="The experiment (its worktree 5_worktrees/SLUG), or `main` for the baseline."),
    eval_args: list[str] = typer.Argument(None, help="After `--`: arguments for `just eval` (e.g. -- --budget-s 600)."),
    question: str = typer.Option(..., "--q", help="The question this job answers (goes into pueue's label)."),
    hypothesis: str = typer.Option(..., "--h", help="The outcome you expect, with a number: `expect -0.02 val_bpb`."),
    seeds: int = typer.Option(1, "--seeds", help="Jobs to add, one per seed (the lowest seeds without an ok row)."),
    after: int | None = typer.Option(None, "--after", help="Start only once pueue task ID has succeeded."),
    foreground: bool = typer.Option(False, "--foreground", help="Run the jobs here and now, one after another, without pueue."),
) -> None:
    """Add one pueue job per seed: `just eval --seed N` in the slug's checkout, after `just smoke` passed on its HEAD."""
    where = root("lab queue")
    try:
        added = core.add(where, slug, question, hypothesis, seeds, after, eval_args or [], foreground)
    except (core.QueueError, pueue.PueueError, gitx.GitError, ledger.LedgerError, ValueError) as e:
        if isinstance(e, pueue.NotInstalled):
            fail(f"lab queue: {e}; or run the job now without the queue: add --foreground")
        fail(f"lab queue: {e}")
    if added and added[0]["predicted_delta"] is None:
        typer.echo(f"warning: no number in --h {added[0]['hypothesis']!r}: the predicted delta stays empty", err=True)
    if not foreground:
        for job in added:
            typer.echo(f"task {job['task']}: {slug} seed {job['seed']} run {job['run_id']} -> pueue group {core.GROUP}")
        typer.echo(f"watch with `lab queue status`, block with `lab wait {' '.join(str(j['task']) for j in added)}`")
        return
    raise typer.Exit(1 if core.run_foreground(added, say=lambda line: typer.echo(line, err=True)) else 0)


@app.command("status")
def status(as_json: bool = typer.Option(False, "--json", help="One JSON object per job, in a list.")) -> None:
    """This workspace's jobs: label, state, runtime, result, and the row's val_bpb and delta vs predicted."""
    where = root("lab queue")
    found, added, warnings, rows = _watch(where, "lab queue status")
    described = core.describe(where, found, rows)
    if as_json:
        typer.echo(json.dumps({"jobs": described, "rows_added": [r["run_id"] for r in added], "warnings": warnings},
                              indent=1, ensure_ascii=False))
        return
    for row in added:
        typer.echo(f"row appended: run {row['run_id']} ({row['status']}): {row['reason']}")
    if not described:
        typer.echo("no queued jobs (add one with `lab queue SLUG --q … --h …`)")
    table = [(str(d["task"]), d["state"], d["result"] or "", "" if d["runtime_s"] is None else f"{d['runtime_s']:.0f}s",
              f"{d['slug']} seed {d['seed']}", _outcome(d)) for d in described]
    for d, line in zip(described, tables.aligned(table, right={0, 3}), strict=True):
        typer.echo(line)
        typer.echo(f"      {' '.join(d['label'].split())}")  # the label under its job
    for w in warnings:
        typer.echo(f"warning: {w}")


def _outcome(d: dict) -> str:
    if d["row"] == "ok":
        obs = "n/a" if d["observed_delta"] is None else f"{d['observed_delta']:+.4f}"
        pred = "n/a" if d["predicted_delta"] is None else f"{d['predicted_delta']:+.4f}"
        return f"val_bpb {d['val_bpb']:.4f}  delta {obs} (predicted {pred})"
    if d["alive"]:
        return "no row yet: its eval.py still runs (orphaned by a daemon restart)"
    return d["row"] or ""


def _watch(where: Path, prefix: str) -> tuple[list, list, list, list]:
    try:
        found, added, warnings = core.watch(where)
        rows, _ = ledger.read(ledger.ledger_path(where))
    except (core.QueueError, pueue.PueueError, ledger.LedgerError, ValueError) as e:
        fail(f"{prefix}: {e}")
    return found, added, warnings, rows


def wait(
    ids: list[int] = typer.Argument(None, help="pueue task ids; default: every unfinished job of this workspace."),
    timeout: float | None = typer.Option(None, "--timeout", help="Give up after this many seconds (exit 124)."),
) -> None:
    """Block until the jobs finish, then print one line each; exit 1 unless every one has an ok row."""
    where = root("lab queue")
    found, _, _, rows = _watch(where, "lab wait")
    mine = {j.task.id for j in found}
    unknown = [i for i in ids or [] if i not in mine]
    if unknown:
        fail(f"lab wait: task(s) {', '.join(map(str, unknown))} are not jobs of this workspace (`lab queue status` lists them)")
    # orphans: pueue marked them Killed when its daemon restarted, but their eval.py runs on and writes the row
    orphans = {d["task"]: d["run_id"] for d in core.describe(where, found, rows) if d["alive"]}
    targets = list(ids) if ids else [j.task.id for j in found if j.task.state != "Done" or j.task.id in orphans]
    if not targets:
        typer.echo("nothing to wait for: no unfinished jobs")
        return
    try:
        stuck = core.blocked(found, targets, pueue.groups())
    except pueue.PueueError as e:
        fail(f"lab wait: {e}")
    for why in stuck.values():
        typer.echo(f"warning: {why}; not waiting for it", err=True)
    started = time.monotonic()
    waiting = [i for i in targets if i not in stuck and i not in orphans]
    try:
        finished = core.wait(waiting, timeout) if waiting else True
    except pueue.PueueError as e:
        fail(f"lab wait: {e}")
    for task, run_id in orphans.items():
        if finished and task in targets:
            left = None if timeout is None else max(0.0, timeout - (time.monotonic() - started))
            finished = jobs.wait_run(where, run_id, left)
    found, _, _, rows = _watch(where, "lab wait")
    described = [d for d in core.describe(where, found, rows) if d["task"] in targets]
    for d in described:
        typer.echo(core.line_of(d))
    if not finished:
        fail(f"lab wait: gave up after {timeout:.0f}s; still running: "
             + ", ".join(str(d["task"]) for d in described if d["state"] != "Done" or d["alive"]), 124)
    raise typer.Exit(0 if all(d["row"] == "ok" for d in described) else 1)


def setup(slots: int | None = typer.Option(None, "--slots", help="Slots of the `lab` group; default one per GPU (1 without).")) -> None:
    """Create pueue's `lab` group with one slot per GPU (idempotent); without pueue, say how to get it."""
    try:
        typer.echo(core.setup(slots))
    except pueue.NotInstalled as e:
        typer.echo(f"lab setup: {e}. Until then `lab queue SLUG … --foreground` runs jobs without a queue.")
    except (core.QueueError, pueue.PueueError) as e:
        fail(f"lab setup: {e}")
