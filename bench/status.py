"""`lab status` on a big workspace: 100k ledger rows, 300 ideas, 20 worktrees, next to `import polars`.

Target: within 3x of `python -c "import polars"` on the same machine. Also times reading (and validating) the
100k-row ledger alone, in a fresh process each time, import of lab.ledger included. Builds the workspace in a temp
clone of the committed repository. Run from the root checkout: `uv run python bench/status.py [ROUNDS] [--against REV]` (default 5
rounds; the commands take turns, so a noisy moment hits each alike; REV's lab is timed alongside, on the same data).
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
            line = template.replace("X\t", f"20261123-{i:06d}-beef\t", 1)  # run_id: the line's first cell
            f.write(line.replace("\tS\texp/S\t", f"\t{slug}\texp/{slug}\t", 1).replace("\t2.5\t", f"\t{2.4 + (i % 97) / 1000}\t", 1))
    text = (ws / "1_ideas" / "_TEMPLATE.md").read_text()
    for i in range(n_ideas):
        status = ("proposed", "critiqued", "running", "done")[i % 4]
        (ws / "1_ideas" / f"2026-11-23_idea-{i}.md").write_text(
            text.replace("status: proposed", f"status: {status}").replace("rating:", f"rating: {1 + i % 5}", 1)
            .replace("created:", "created: 2026-11-23 09:00", 1).replace("slug:", f"slug: idea-{i}", 1)
            .replace("title:", f"title: idea number {i}", 1))
    for i in range(n_trees):
        git("worktree", "add", "-q", f"5_worktrees/idea-{i}", "-b", f"exp/idea-{i}", "main")


def timed(commands: dict[str, tuple[list[str], Path]], rounds: int) -> dict[str, list[float]]:
    """Wall seconds of each (command, cwd), `rounds` times, interleaved: a noisy moment hits every command alike."""
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, (cmd, cwd) in commands.items():
            start = time.perf_counter()
            proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
            samples[name].append(time.perf_counter() - start)
            if proc.returncode != 0:
                sys.exit(f"{cmd} in {cwd} failed: {proc.stderr[-2000:]}")
    return samples


def workspace(tmp: Path, name: str, rev: str) -> Path:
    """A clone of this repository at `rev` with the big workspace built and committed in it."""
    ws = tmp / name
    subprocess.run(["git", "clone", "-q", str(ROOT), str(ws)], check=True)
    subprocess.run(["git", "checkout", "-q", rev], cwd=ws, check=True)
    (ws / ".venv").symlink_to(ROOT / ".venv")
    build(ws, rows=100_000, n_ideas=300, n_trees=20)
    subprocess.run(["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qam", "bench"], cwd=ws, check=True)
    return ws


def main() -> None:
    args = sys.argv[1:]
    against = args[args.index("--against") + 1] if "--against" in args else None  # an older commit, timed alongside
    rounds = int(next((a for a in args if a.isdigit()), "5"))
    keep = os.environ.get("LAB_BENCH_KEEP")  # a directory to build in and keep, for profiling
    with tempfile.TemporaryDirectory(prefix="lab-status-bench-") as tmp:
        tmp = Path(keep or tmp)
        revs = {"HEAD": workspace(tmp, "ws", "HEAD")} | ({against: workspace(tmp, "ws-against", against)} if against else {})
        lab = [sys.executable, "-m", "lab.cli"]
        commands = {"polars": ([sys.executable, "-c", "import polars"], revs["HEAD"])}
        for rev, ws in revs.items():
            commands |= {f"status {rev}": ([*lab, "status"], ws), f"digest {rev}": ([*lab, "digest"], ws),
                         f"read {rev}": ([sys.executable, "-c", READ], ws)}
        s = timed(commands, rounds)
        med, low = ({k: f(v) for k, v in s.items()} for f in (statistics.median, min))
        print(f"{rounds} interleaved rounds; seconds, median / min; 100k rows, 300 ideas, 20 worktrees")
        print(f"{'python -c import polars':32s} {med['polars']:5.2f} / {low['polars']:5.2f}")
        for rev in revs:
            for what in ("status", "digest", "read"):
                name = f"{what} {rev}"
                ratio = f"   = {med[name] / med['polars']:.2f}x / {low[name] / low['polars']:.2f}x polars import" \
                    + (" (target <= 3x)" if what == "status" else "")
                print(f"{('lab ' if what != 'read' else 'ledger.') + name:32s} {med[name]:5.2f} / {low[name]:5.2f}{ratio}")
        out = subprocess.run([*lab, "digest"], cwd=revs["HEAD"], capture_output=True, text=True).stdout
        print(f"digest length: {len(out)} characters (cap 4000); cpu: {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
