"""`lab.judge.plot` on constructed ledgers: a valid PNG of fixed size in every case, atomic writes, the frontier.

Rows go through a real results.tsv (lab.ledger.append, then ledger.read), so the schema is the real one.
Cost: ~7 s on a 2-core machine (matplotlib, headless; the 3,000-run plot is bounded in CPU seconds, not
wall time); fast set. Run: `just test tests/unit/test_plot.py`.
"""

from __future__ import annotations

import os
import random
import struct
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from lab import ledger, names
from lab.judge import plot
from lab.loop import status

WIDTH, HEIGHT = int(plot.FIGSIZE[0] * plot.DPI), int(plot.FIGSIZE[1] * plot.DPI)
START = datetime(2026, 11, 22, 22, 0)
ROW = {"branch": "main", "commit": "abcdef1", "dirty": "0", "reason": "", "val_bpb": "", "train_s": "300.0",
       "wall_s": "340.0", "steps": "1200", "tokens": "9830400", "params": "3400000", "peak_mem_mb": "5120.5",
       "pueue_task": "7", "label": "Q: does it help? H: -0.02", "predicted_delta": "-0.02", "seed": "0",
       "budget_s": "300.0", "max_steps": "", "device": "cuda", "host": "box", "eval_sha": "e" * 40,
       "prepare_sha": "f" * 40, "train_sha": "c" * 40, "data_sha": "d" * 40}


def run(i: int, slug: str, status_: str = "ok", val: float | None = None, minutes: float | None = None,
        **extra: str) -> dict:
    """Row `i` of a constructed ledger, every column filled; failures carry a reason and no val_bpb."""
    when = START + timedelta(minutes=6 * i if minutes is None else minutes)
    return {**ROW, "run_id": f"r{i:05d}", "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "slug": slug,
            "branch": "main" if slug in names.BASELINE_SLUGS else f"exp/{slug}", "status": status_,
            "reason": "" if status_ == "ok" else f"{status_}: exit 1",
            "val_bpb": "" if status_ != "ok" else f"{2.5 if val is None else val:.4f}", "seed": str(i % 5), **extra}


def ledger_of(tmp_path: Path, rows: list[dict], bulk: bool = False) -> list[dict[str, str]]:
    """Write `rows` to a fresh results.tsv and read them back validated; `bulk`: one write, for big ledgers.

    The ledger lives in its own folder (reading it leaves a .cache/ there), so `tmp_path` holds only plots.
    """
    folder = tmp_path / "ledger"
    folder.mkdir(exist_ok=True)
    path = folder / ledger.FILENAME
    path.write_text(ledger.HEADER)
    if bulk:  # the same validated lines ledger.append writes, without an fsync per row
        with open(path, "a") as f:
            f.write("".join(ledger.format_row(r) for r in rows))
    else:
        for r in rows:
            ledger.append(r, path)
    read, problems = ledger.read(path)
    assert problems == [] and len(read) == len(rows)
    return read


def night(n: int, seed: int = 0) -> list[dict]:
    """`n` runs over two nights: baseline seeds, six slugs, a few failures of every kind, two real gains."""
    rnd = random.Random(seed)
    slugs = ["lower-lr", "wider-mlp", "rope-base", "swiglu", "qk-norm", "wider-qk"]
    rows = []
    for i in range(n):
        minutes = 6 * i + (20 * 60 if i >= n // 2 else 0)  # the second half runs the next night
        if i % 10 == 0:
            rows.append(run(i, "main", val=2.5 + rnd.gauss(0, 0.008), minutes=minutes))
        elif i % 13 == 0:
            rows.append(run(i, slugs[i % 6], ledger.STATUSES[1 + i % 4], minutes=minutes))
        else:
            slug = slugs[(i * 6) // n]
            gain = {"wider-mlp": 0.04, "wider-qk": 0.08}.get(slug, 0.0)
            rows.append(run(i, slug, val=2.5 - gain + rnd.gauss(0, 0.008), minutes=minutes))
    return rows


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, after checking the 8-byte PNG signature."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    return struct.unpack(">II", data[16:24])


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name != "ledger")


def test_sample_ledger_is_a_png_of_fixed_size(tmp_path):
    rows = ledger_of(tmp_path, night(60))
    out = plot.plot(rows, tmp_path / "progress.png", title="two nights")
    assert out == tmp_path / "progress.png"
    assert png_size(out) == (WIDTH, HEIGHT)
    import matplotlib.image

    assert matplotlib.image.imread(out).shape[:2] == (HEIGHT, WIDTH)  # decodes whole, not just a header
    assert files_in(tmp_path) == ["progress.png"]  # no temp file left beside it


def test_file_grows_with_the_runs(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()  # two ledgers
    small = plot.plot(ledger_of(tmp_path / "a", night(5)), tmp_path / "small.png")
    big = plot.plot(ledger_of(tmp_path / "b", night(300)), tmp_path / "big.png")
    assert png_size(small) == png_size(big) == (WIDTH, HEIGHT)
    assert big.stat().st_size > small.stat().st_size * 1.2


def test_zero_rows_still_writes_a_png(tmp_path):
    assert ledger_of(tmp_path, []) == []
    out = plot.plot([], tmp_path / "empty.png")
    assert png_size(out) == (WIDTH, HEIGHT)


def test_only_failures(tmp_path):
    rows = ledger_of(tmp_path, [run(i, "wider-mlp", "crash") for i in range(6)])
    assert png_size(plot.plot(rows, tmp_path / "crashes.png")) == (WIDTH, HEIGHT)
    every = ledger_of(tmp_path, [run(i, "x", s) for i, s in enumerate(ledger.STATUSES[1:])])
    assert png_size(plot.plot(every, tmp_path / "failures.png")) == (WIDTH, HEIGHT)


@pytest.mark.parametrize("slug", ["main", "wider-mlp"])
def test_a_single_run(tmp_path, slug):
    rows = ledger_of(tmp_path, [run(0, slug)])
    assert png_size(plot.plot(rows, tmp_path / "one.png")) == (WIDTH, HEIGHT)


def test_odd_ledgers_still_draw(tmp_path):
    """Identical times, identical values, a diverged run far above the rest, other budgets, many slugs."""
    rows = [run(i, "main", val=2.5, minutes=0) for i in range(3)]
    rows += [run(3 + i, f"idea-{i}", val=2.45 - i * 0.001, minutes=10) for i in range(30)]
    rows += [run(40, "idea-1", val=9.5), run(41, "idea-2", val=2.3, budget_s="60.0")]
    out = plot.plot(ledger_of(tmp_path, rows, bulk=True), tmp_path / "odd.png", kept={"idea-1", "idea-7"})
    assert png_size(out) == (WIDTH, HEIGHT)


def test_replaces_an_existing_plot_keeping_its_mode(tmp_path):
    out = tmp_path / "progress.png"
    out.write_bytes(b"old")
    out.chmod(0o640)
    plot.plot(ledger_of(tmp_path, night(20)), out)
    assert png_size(out) == (WIDTH, HEIGHT) and (out.stat().st_mode & 0o777) == 0o640
    assert files_in(tmp_path) == ["progress.png"]


def test_no_temp_file_remains_when_rendering_fails(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    rows = ledger_of(tmp_path, night(20))
    out = tmp_path / "progress.png"
    out.write_bytes(b"old plot")

    def broken(self, fname, **kwargs):
        if hasattr(fname, "write"):
            fname.write(b"\x89PNG half")
        raise RuntimeError("renderer died")

    monkeypatch.setattr(Figure, "savefig", broken)
    with pytest.raises(RuntimeError, match="renderer died"):
        plot.plot(rows, out)
    assert out.read_bytes() == b"old plot"
    assert files_in(tmp_path) == ["progress.png"]


@pytest.mark.parametrize("existing", [True, False])
def test_no_temp_file_remains_when_the_write_fails(tmp_path, monkeypatch, existing):
    rows = ledger_of(tmp_path, night(20))
    out = tmp_path / "progress.png"
    if existing:
        out.write_bytes(b"old plot")

    def refuse(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    monkeypatch.setattr(os, "link", refuse)
    with pytest.raises(OSError, match="No space left"):
        plot.plot(rows, out)
    assert files_in(tmp_path) == (["progress.png"] if existing else [])
    if existing:
        assert out.read_bytes() == b"old plot"


def test_missing_directory_is_an_error_not_a_stray_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        plot.plot([], tmp_path / "nowhere" / "progress.png")
    assert files_in(tmp_path) == []


def test_frontier_is_the_running_minimum_from_the_baseline_mean(tmp_path):
    rows = ledger_of(tmp_path, [
        run(0, "main", val=2.50), run(1, "main", val=2.52), run(2, "main", val=2.48),  # mean 2.50
        run(3, "worse", val=2.51),  # above the baseline mean: no progress
        run(4, "wider", val=2.47),
        run(5, "wider", "crash"),
        run(6, "noise", val=2.48),  # not below the best so far
        run(7, "short", val=2.30, budget_s="60.0"),  # another budget: not comparable
        run(8, "wider", val=2.46),
        run(9, "qk", val=2.44),
    ])
    base, _ = status.judged(rows, "c" * 40)
    assert [r["run_id"] for r in plot.frontier(rows, None, base)] == ["r00004", "r00008", "r00009"]
    assert [r["run_id"] for r in plot.frontier(rows, {"qk", "worse"}, base)] == ["r00009"]
    assert [r["run_id"] for r in plot.frontier(rows, {"worse"}, None)] == ["r00003"]  # no baseline: from the first
    assert plot.frontier(rows, set(), base) == []
    assert png_size(plot.plot(rows, tmp_path / "f.png", kept={"qk"})) == (WIDTH, HEIGHT)


def test_idle_stretches_are_cut_short():
    hours = [h + k * 0.1 for h in (0.0, 24.0) for k in range(30)]  # two 3 h nights, 21 h apart
    line = plot.Timeline(hours)
    assert line.width < 8  # not the 27 h it spans
    [(left, right, idle)] = line.gaps()
    assert abs(idle - 21.1) < 1e-6 and left < right
    xs = line.xs(hours)
    assert xs == sorted(xs) and abs(xs[29] - xs[0] - 2.9) < 1e-6  # inside a night x runs like time
    ticks, labels = line.ticks()
    assert ticks == sorted(ticks) and len(ticks) == len(labels) >= 2
    assert sum("\n" in label for label in labels) == 2  # the date under the first tick of each night


def test_thousands_of_runs_stay_fast(tmp_path):
    import time

    rows = ledger_of(tmp_path, night(3000), bulk=True)
    began = time.process_time()  # this process's CPU time: other processes' load does not count
    out = plot.plot(rows, tmp_path / "big.png")
    assert time.process_time() - began < 15  # ~1 s on a laptop core; only frontier points are annotated
    assert png_size(out) == (WIDTH, HEIGHT)


def test_importing_lab_plot_does_not_import_matplotlib():
    code = "import sys, lab.judge.plot; assert 'matplotlib' not in sys.modules, 'matplotlib imported at module level'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr
