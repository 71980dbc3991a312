"""`lab status` on a big workspace: 100k ledger rows, 300 ideas, 20 worktrees, next to `import polars`.

Target: within 3x of `python -c "import polars"` on the same machine. Also times reading (and validating) the
100k-row ledger alone, in a fresh process each time, import of lab.ledger included. Builds the workspace in a temp
clone of the committed repository. Run from the root checkout: `uv run python bench/status.py`.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from lab import ledger  # noqa: E402

ROW = {"run_id": "X", "time": "2026-11-23T09:00:00Z", "slug": "S", "branch": "exp/S", "commit": "a" * 40, "dirty": 0,
       "status": "ok", "reason": "", "val_bpb": 2.5, "train_s": 300.0, "wall_s": 400.0, "steps": 1000, "tokens": 10**7,
       "params": 3412480, "peak_mem_mb": 2000.0, "seed": 0, "budget_s": 300.0, "device": "cuda", "host": "gpu-box",
       "eval_sha": "abcdef0123456789", "prepare_sha": "abcdef0123456789", "train_sha": "abcdef0123456789",
       "data_sha": "abcdef0123456789"}


# Reads the workspace's ledger, every row validated; fails on any problem.
READ = "from lab import ledger; rows, problems = ledger.read('results.tsv'); assert len(rows) == 100_000 and not problems"


def build(ws: Path, rows: int, n_ideas: int, n_trees: int) -> None:
    git = lambda *a: subprocess.run(["git", *a], cwd=ws, check=True, capture_output=True)
    template = ledger.format_row(ROW)
    with open(ws / "results.tsv", "a") as f:
        for i in range(rows):
            slug = "main" if i % 50 == 0 else f"idea-{i % n_ideas}"
            f.write(template.replace("\tX\t", f"\t20261123-{i:06d}-beef\t", 1).replace("\tS\texp/S\t", f"\t{slug}\texp/{slug}\t", 1)
                    .replace("\t2.5\t", f"\t{2.4 + (i % 97) / 1000}\t", 1))
    text = (ws / "1_ideas" / "_TEMPLATE.md").read_text()
    for i in range(n_ideas):
        status = ("proposed", "critiqued", "running", "done")[i % 4]
        (ws / "1_ideas" / f"2026-11-23_idea-{i}.md").write_text(
            text.replace("status: proposed", f"status: {status}").replace("rating:", f"rating: {1 + i % 5}", 1)
            .replace("created:", "created: 2026-11-23 09:00", 1).replace("slug:", f"slug: idea-{i}", 1)
            .replace("title:", f"title: idea number {i}", 1))
    for i in range(n_trees):
        git("worktree", "add", "-q", f"5_worktrees/idea-{i}", "-b", f"exp/idea-{i}", "main")


def median_time(cmd: list[str], cwd: Path, n: int = 3) -> float:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
        samples.append(time.perf_counter() - start)
        if proc.returncode != 0:
            sys.exit(f"{cmd} failed: {proc.stderr[-2000:]}")
    return statistics.median(samples)


def main() -> None:
    keep = os.environ.get("LAB_BENCH_KEEP")  # a directory to build in and keep, for profiling
    with tempfile.TemporaryDirectory(prefix="lab-status-bench-") as tmp:
        tmp = keep or tmp
        ws = Path(tmp) / "ws"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(ws)], check=True)
        (ws / ".venv").symlink_to(ROOT / ".venv")
        build(ws, rows=100_000, n_ideas=300, n_trees=20)
        subprocess.run(["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qam", "bench"], cwd=ws, check=True)
        polars = median_time([sys.executable, "-c", "import polars"], ws)
        read = median_time([sys.executable, "-c", READ], ws)
        status = median_time([sys.executable, "-m", "lab.cli", "status"], ws)
        digest = median_time([sys.executable, "-m", "lab.cli", "digest"], ws)
        print(f"python -c 'import polars'   median {polars:6.2f} s")
        print(f"lab status (100k rows, 300 ideas, 20 worktrees) median {status:6.2f} s   "
              f"= {status / polars:.2f}x polars import (target <= 3x)")
        print(f"lab digest (same workspace)  median {digest:6.2f} s")
        print(f"ledger.read (100k rows, fresh process) median {read:6.2f} s")
        out = subprocess.run([sys.executable, "-m", "lab.cli", "digest"], cwd=ws, capture_output=True, text=True).stdout
        print(f"digest length: {len(out)} characters (cap 4000); cpu: {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
