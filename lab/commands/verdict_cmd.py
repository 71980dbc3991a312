"""`lab baseline|noise|verdict|calibration|plot|merge`: judging experiments against the measured noise."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import typer

from lab import gitx, ledger, names, runs, tables
from lab.commands.common import fail, root
from lab.grader import admin, protect
from lab.judge import verdicts
from lab.loop import ideas, status
from lab.queue import pueue
from lab.queue import queue as q

MIN_EFFECT = typer.Option(0.0, "--min-effect",
                          help="The smallest val_bpb gain worth keeping (a keep must beat the baseline by this much).")


def _rows(where: Path) -> list[dict]:
    rows, problems = ledger.read(ledger.ledger_path(where))
    if problems:
        typer.echo(f"warning: {len(problems)} bad ledger line(s) left out, e.g. {problems[0]} (`lab ledger check`)", err=True)
    rows, left_out = protect.verified(where, rows)
    if left_out:
        typer.echo(f"warning: {left_out}", err=True)
    return rows


def baseline(
    eval_args: list[str] = typer.Argument(None, help="After `--`: arguments for `just eval` (e.g. -- --budget-s 600)."),
    seeds: int = typer.Option(verdicts.LOOKS[0], "--seeds", help="Baseline runs to add (the lowest seeds without an ok row)."),
    foreground: bool = typer.Option(False, "--foreground", help="Run them here and now, not in the queue."),
) -> None:
    """Run the unmodified baseline N more times: queued when pueue runs here, else in the foreground."""
    where = root("lab")
    question, hypothesis = "what is the noise floor of the baseline?", "expect 0 (same code, another seed)"
    if not foreground:
        try:
            q.setup_ready()
        except (pueue.PueueError, q.QueueError) as e:
            typer.echo(f"lab baseline: no queue ({e}); running in the foreground", err=True)
            foreground = True
    try:
        added = q.add(where, names.MAIN, question, hypothesis, seeds, None, eval_args or [], foreground)
    except (q.QueueError, pueue.PueueError, gitx.GitError, ledger.LedgerError, ValueError) as e:
        fail(f"lab baseline: {e}")
    if not foreground:
        typer.echo(f"queued baseline seeds {', '.join(str(j['seed']) for j in added)} as task(s) "
                   f"{', '.join(str(j['task']) for j in added)}: `lab wait`, then `lab noise`")
        return
    raise typer.Exit(1 if q.run_foreground(added, say=lambda line: typer.echo(line, err=True)) else 0)


def noise(as_json: bool = typer.Option(False, "--json")) -> None:
    """The baseline's mean, std and minimum detectable effect, from comparable ok rows only."""
    where = root("lab")
    n = verdicts.noise(_rows(where), runs.main_train_sha(where))
    if n is None:
        fail(f"lab noise: no ok baseline rows yet: run `just baseline` ({verdicts.LOOKS[0]} seeds of the unmodified baseline)")
    if as_json:
        typer.echo(json.dumps(asdict(n), indent=1))
        return
    mde = "n/a (needs 2 rows)" if n.mde is None else (
        f"{n.mde:.4f} (planning formula at {n.n} vs {n.n} seeds, alpha {verdicts.ALPHA}/{len(verdicts.LOOKS)} per look, "
        f"power {verdicts.POWER})")
    typer.echo(f"baseline: val_bpb {n.mean:.4f} ± {n.std:.4f} (sample std, n={n.n}); minimum detectable effect {mde}")
    typer.echo("comparable on: " + ", ".join(f"{k}={v}" for k, v in n.key.items()))
    if n.excluded:
        typer.echo("excluded: " + ", ".join(f"{count} {why}" for why, count in n.excluded.items()))


def verdict(
    slug: str = typer.Argument(..., help="The experiment's slug."),
    min_effect: float = MIN_EFFECT,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """keep / discard / inconclusive (run K more seeds), from Welch's interval against the baseline's seeds."""
    where = root("lab")
    try:
        v = verdicts.verdict(_rows(where), slug, min_effect=min_effect, train_sha=runs.main_train_sha(where))
    except verdicts.VerdictError as e:
        fail(f"lab verdict: {e}")
    typer.echo(json.dumps(asdict(v), indent=1) if as_json else f"{slug}: {v.reason}")  # the reason starts with the kind


def calibration(as_json: bool = typer.Option(False, "--json")) -> None:
    """Predicted vs observed delta per idea and overall: sign agreement, absolute error, inside the range."""
    where = root("lab")
    predictions = {i.slug: ideas.prediction(i) for i in ideas.all_ideas(where)}  # text; parsed by verdicts
    try:
        c = verdicts.calibration(_rows(where), predictions, train_sha=runs.main_train_sha(where))
    except verdicts.VerdictError as e:
        fail(f"lab calibration: {e}")
    if as_json:
        typer.echo(json.dumps(c, indent=1))
        return
    yes_no = lambda flag: "-" if flag is None else "yes" if flag else "no"
    table = [("slug", "predicted", "observed", "sign", "inside")]
    for slug, s in c["slugs"].items():
        pred = "none" if s["predicted"] is None else f"{s['predicted']:+.4f}"
        obs = "n/a" if s["observed"] is None else f"{s['observed']:+.4f}"
        table.append((slug, pred, obs, yes_no(s["sign_agrees"]), yes_no(s["inside"])))
    if c["slugs"]:
        for line in tables.aligned(table, right={1, 2}):
            typer.echo(line)
    o = c["overall"]
    agree = "n/a" if o["sign_agreement"] is None else f"{o['sign_agreement']:.0%}"
    mae = "n/a" if o["mean_abs_error"] is None else f"{o['mean_abs_error']:.4f}"
    typer.echo(f"overall: {o['n']} scored, sign agreement {agree}, mean absolute error {mae}")


def plot(out: Path = typer.Option(Path("9_reports/progress.png"), "--out", help="Where the PNG goes (relative to the root).")) -> None:
    """Draw every run over time, the baseline band and the best-so-far frontier into a PNG (git ignores it)."""
    from lab.judge import plot as drawing  # matplotlib only for this command

    where = root("lab")
    path = out if out.is_absolute() else where / out
    rows = _rows(where)
    train_sha = runs.main_train_sha(where)
    base, judged = status.judged(rows, train_sha)
    kept = {slug for slug, v in judged.items() if v.kind == "keep"} if base else None
    headline = status.best_line(status.best_of(judged)) if base else ""
    written = drawing.plot(rows, path, kept=kept, title=f"lab: {where.name}", base=base, headline=headline)
    typer.echo(f"wrote {written}" + (f" ({headline})" if headline else ""))


def merge(slug: str = typer.Argument(..., help="The kept experiment."), min_effect: float = MIN_EFFECT) -> None:
    """Merge exp/SLUG into main (human or meta mode): needs verdict keep and a clean `lab check`; tags the baseline."""
    from lab.judge import merge as merging

    where = root("lab")
    try:
        commit, tag, _ = merging.merge(where, slug, min_effect)
    except (merging.MergeError, verdicts.VerdictError, gitx.GitError) as e:
        fail(f"lab merge: {e}")
    typer.echo(f"merged {names.EXP}{slug} into {names.MAIN} as {commit[:12]}, tagged {tag}. The baseline changed: re-run its seeds "
               f"(`lab baseline --seeds {verdicts.LOOKS[0]}`) before judging the next experiment; older baseline rows no longer count.")
    cfg = protect.config(where)
    if cfg is not None and os.geteuid() == 0:  # the human, with sudo: the held-out test split too
        typer.echo("held-out test split (the grader's private state; the agent never sees it):")
        try:
            typer.echo("\n".join(admin.test_scores(cfg, slug)))
        except protect.ProtectError as e:
            typer.echo(f"  {e}")
