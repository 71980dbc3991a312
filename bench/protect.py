"""Benchmark: what protected mode costs a run: `just eval --max-steps N` protected vs unprotected, side by side.

As root (protection needs it): a real agent user owns two copies of the committed workspace (main's
train.py, the same corpus); one is protected (`lab protect`, tests/protected.py's set-up), the other not.
The same `just eval --max-steps N --seed 0` runs in each as the agent, interleaved (so load drifts hit
both), and the table gives eval's wall time (measured outside, around `just`) and the training process's
wall time as eval measured it (train_wall_s). Minimums are the estimate on a shared machine (other load
only ever adds); medians too. Target: protection adds at most 5%. Also checks both give the same val_bpb
(a step budget is deterministic). Everything it creates is removed at the end.
Run: `sudo .venv/bin/python bench/protect.py [N] [ROUNDS] [SOURCE]` (~8 min on 2 CPU cores with the
defaults N=3, ROUNDS=2, SOURCE=/usr/lib/python3.X).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
from protected import Protected  # noqa: E402

from lab import ledger  # noqa: E402


def main() -> None:
    steps = sys.argv[1] if len(sys.argv) > 1 else "3"
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    source = Path(sys.argv[3] if len(sys.argv) > 3 else f"/usr/lib/python{sys.version_info.major}.{sys.version_info.minor}")
    if os.geteuid() != 0:
        sys.exit("bench/protect.py: protected mode is set up by root: run it with sudo")
    p = Protected(source, tiny=False, copy=False)
    try:
        p.up()
        plain = p.base / "plain"
        subprocess.run(["cp", "-a", str(p.ws), str(plain)], check=True)  # another path: another, unprotected repo
        (plain / "results.tsv").write_text(ledger.HEADER)
        proc = p.as_agent("just", "prepare", "--source", str(source), cwd=plain)
        assert proc.returncode == 0, proc.stderr[-2000:]
        walls: dict[str, list[float]] = {"protected": [], "unprotected": []}
        for _ in range(rounds):
            for mode, where in (("protected", p.ws), ("unprotected", plain)):
                start = time.perf_counter()
                proc = p.as_agent("just", "eval", "--max-steps", steps, "--seed", "0", "--source", str(source), cwd=where)
                walls[mode].append(time.perf_counter() - start)
                if proc.returncode != 0:
                    sys.exit(f"{mode} eval failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
        rows = {"protected": ledger.read(p.ws / "results.tsv")[0], "unprotected": ledger.read(plain / "results.tsv")[0]}
    finally:
        p.teardown()

    def cell(values: list[float]) -> str:
        return f"{min(values):.1f} / {statistics.median(values):.1f}"

    print(f"just eval --max-steps {steps} --seed 0, main's train.py, corpus {source}, {rounds} run(s) per mode "
          f"interleaved, as an unprivileged user, {os.cpu_count()} CPU core(s); seconds, min / median")
    print(f"{'':14s} {'eval wall':>14s} {'train_wall_s':>14s}  val_bpb")
    for mode in walls:
        bpbs = sorted({r["val_bpb"] for r in rows[mode]})
        print(f"{mode:14s} {cell(walls[mode]):>14s} {cell([float(r['train_wall_s']) for r in rows[mode]]):>14s}  {', '.join(bpbs)}")
    extra = min(walls["protected"]) - min(walls["unprotected"])
    share = 100 * extra / min(walls["unprotected"])
    print(f"protection cost, minimums (target <= 5%): {extra:+.1f} s ({share:+.1f}%) {'met' if share <= 5 else 'NOT met'}")
    same = {r["val_bpb"] for rs in rows.values() for r in rs}
    print(f"same val_bpb protected and not: {'yes' if len(same) == 1 else 'NO: ' + ', '.join(sorted(same))}")


if __name__ == "__main__":
    main()
