"""`lab ledger …`: look at and validate results.tsv."""

from __future__ import annotations

from pathlib import Path

import typer

from lab import gitx, ledger
from lab.commands.common import fail
from lab.grader import protect

app = typer.Typer(help="Read and validate the ledger (results.tsv).", no_args_is_help=True)


def _path(path: Path | None) -> Path:
    try:
        return path or ledger.ledger_path()
    except gitx.GitError as e:
        fail(f"lab ledger: {e}", 2)


@app.command()
def check(path: Path | None = typer.Argument(None, help="Ledger file; default: the root checkout's results.tsv.")) -> None:
    """Validate every line; name the file, line and field of each bad one (exit 1 if any)."""
    target = _path(path)
    rows, problems = ledger.read(target)
    problems = [str(p) for p in problems]
    cfg = protect.config(gitx.root_checkout(target.parent)) if path is None else None
    if cfg is not None:  # protected: every signature, and the mirror against the grader's own ledger
        problems += protect.check(Path(cfg.repo), target)
    for problem in problems:
        typer.echo(problem, err=True)
    typer.echo(f"{target}: {len(rows)} valid row(s), {len(problems)} problem(s)"
               + (f"; verified against the grader's ledger {cfg.ledger}" if cfg else f"; {protect.UNPROTECTED}"))
    raise typer.Exit(1 if problems else 0)


@app.command()
def show(
    n: int = typer.Option(10, "-n", help="How many of the newest rows."),
    path: Path | None = typer.Argument(None, help="Ledger file; default: the root checkout's results.tsv."),
) -> None:
    """Print the newest rows as a table (problems are reported, not hidden)."""
    import polars as pl

    target = _path(path)
    rows, problems = ledger.read(target)
    for problem in problems:
        typer.echo(f"warning: {problem}", err=True)
    if not rows:
        typer.echo(f"{target}: no runs yet (run `just eval`)")
        return
    columns = ["run_id", "slug", "status", "val_bpb", "seed", "budget_s", "max_steps", "train_s", "steps", "params", "reason"]
    table = pl.DataFrame(rows[-n:]).select(columns)
    # Wide enough that no run id (the thing you cite) is ever wrapped; long reasons are cut at 60 characters.
    with pl.Config(tbl_rows=n, tbl_cols=len(columns), fmt_str_lengths=60, tbl_width_chars=400,
                   tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True):
        typer.echo(table)
