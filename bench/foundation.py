"""Benchmark of the foundation's promises, on a throwaway clone of the committed workspace.

Prints: `just smoke` wall time (target ≤ 60 s on a 2-core CPU), `just eval --budget-s 30` (one valid
row), and two step-budget runs with the same seed (identical val_bpb). Uses the real stdlib corpus.
Run from the root checkout: `uv run python bench/foundation.py` (~5 min on a 2-core CPU).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from lab import ledger  # noqa: E402


def just(clone: Path, *args: str) -> tuple[float, subprocess.CompletedProcess]:
    env = {**os.environ, "LAB_PYTHON": sys.executable}
    env.pop("LAB_RUN_ID", None)
    start = time.perf_counter()
    proc = subprocess.run([str(Path(sys.executable).parent / "just"), *args], cwd=clone, env=env, capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        sys.exit(f"`just {' '.join(args)}` failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start, proc


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="lab-bench-") as tmp:
        clone = Path(tmp) / "ws"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        results = clone / "results.tsv"
        just(clone, "prepare")  # build the data cache once, outside the timings
        smoke_s, smoke = just(clone, "smoke")
        eval_s, _ = just(clone, "eval", "--budget-s", "30")
        runs = [just(clone, "eval", "--budget-s", "30", "--max-steps", "20", "--seed", "7")[0] for _ in range(2)]
        rows, problems = ledger.read(results)
        smoke_status = next(line.split()[1] for line in smoke.stdout.splitlines() if line.startswith("status:"))
        print(f"{'just smoke (wall)':42s} {smoke_s:7.1f} s   status {smoke_status}   target <= 60 s on 2 CPU cores")
        print(f"{'just eval --budget-s 30 (wall)':42s} {eval_s:7.1f} s   status {rows[0]['status']}   val_bpb {rows[0]['val_bpb']}")
        for i, (row, secs) in enumerate(zip(rows[1:], runs, strict=False), 1):
            print(f"{f'just eval --max-steps 20 --seed 7 (#{i})':42s} {secs:7.1f} s   status {row['status']}   val_bpb {row['val_bpb']}")
        same = len(rows) == 3 and rows[1]["val_bpb"] == rows[2]["val_bpb"]
        print(f"rows appended: {len(rows)} (expected 3), ledger problems: {len(problems)}, "
              f"step-budget runs identical: {'yes' if same else 'NO'}")
        print(f"cpu: {os.cpu_count()} cores; torch threads default")


if __name__ == "__main__":
    main()
