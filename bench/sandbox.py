"""Benchmark: what the bwrap sandbox costs a run, on a throwaway clone of the committed workspace.

First the sandbox's own start-up: `python -c "import torch"` in the sandbox and bare, interleaved.
Then the same `just eval --max-steps N --seed 0` sandboxed and --unsandboxed, interleaved (so load
drifts hit both), with their wall times side by side: eval's whole wall_s and the training
process's wall time as eval measured it (train_wall_s). Minimums are the estimate on a shared
machine (other load only ever adds); medians are shown too. Target: the sandbox adds at most 3% or
2 s. Also checks that both give the same val_bpb (a step budget is deterministic: the sandbox
changes nothing the model sees). Uses the real stdlib corpus and main's train.py.
Run from the root checkout: `uv run python bench/sandbox.py [N] [ROUNDS]` (~15 min on 2 CPU cores
with the defaults N=3, ROUNDS=3).
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
from lab.grader import sandbox  # noqa: E402


def just(clone: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LAB_PYTHON": sys.executable}
    env.pop("LAB_RUN_ID", None)
    proc = subprocess.run([str(Path(sys.executable).parent / "just"), *args], cwd=clone, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"`just {' '.join(args)}` failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return proc


def startup(rounds: int = 10) -> None:
    """Wall seconds of `python -c "import torch"`, in the sandbox and bare, interleaved."""
    with tempfile.TemporaryDirectory(prefix="lab-bench-") as tmp:
        tree, out, data = (Path(tmp) / d for d in ("tree", "out", "data"))
        for d in (tree, out, data):
            d.mkdir()
        (data / "train.bin").write_bytes(b"x")
        boxed = sandbox.command([sys.executable, "-c", "import torch"], tree=tree, train_bin=data / "train.bin",
                                out_dir=out, device="cpu")
        times: dict[str, list[float]] = {"sandboxed": [], "bare": []}
        for _ in range(rounds):
            for name, cmd in (("sandboxed", boxed), ("bare", [sys.executable, "-c", "import torch"])):
                start = time.perf_counter()
                subprocess.run(cmd, env=sandbox.environment(), check=True, cwd=tree)
                times[name].append(time.perf_counter() - start)
    print(f"python -c 'import torch', {rounds} runs each interleaved: "
          + "; ".join(f"{k} min {min(v):.2f} s, median {statistics.median(v):.2f} s" for k, v in times.items())
          + f"; sandbox start-up {min(times['sandboxed']) - min(times['bare']):+.2f} s (minimums)")


def main() -> None:
    steps = sys.argv[1] if len(sys.argv) > 1 else "3"
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    ok, line = sandbox.available()
    if not ok:
        sys.exit(f"bench/sandbox.py: {line}")
    startup()
    with tempfile.TemporaryDirectory(prefix="lab-bench-") as tmp:
        clone = Path(tmp) / "ws"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        subprocess.run(["git", "checkout", "-q", "-B", "main"], cwd=clone, check=True)  # eval compares with main
        just(clone, "prepare")  # build the data cache once, outside the timings
        modes = {line: (), "none": ("--unsandboxed",)}
        for _ in range(rounds):
            for extra in modes.values():
                just(clone, "eval", "--max-steps", steps, "--seed", "0", *extra)
        rows, problems = ledger.read(clone / "results.tsv")
    by_mode = {mode: [r for r in rows if r["sandbox"] == mode and r["status"] == "ok"] for mode in modes}
    if problems or any(len(v) != rounds for v in by_mode.values()):
        sys.exit(f"bench/sandbox.py: expected {rounds} ok rows per mode, got "
                 f"{ {m: len(v) for m, v in by_mode.items()} } and {len(problems)} ledger problem(s)")

    def values(mode: str, column: str) -> list[float]:
        return [float(r[column]) for r in by_mode[mode]]

    def cell(mode: str, column: str) -> str:
        return f"{min(values(mode, column)):.1f} / {statistics.median(values(mode, column)):.1f}"

    print(f"just eval --max-steps {steps} --seed 0, main's train.py, stdlib corpus, {rounds} run(s) per mode "
          f"interleaved, {os.cpu_count()} CPU core(s); min / median")
    print(f"{'':24s} {'eval wall_s':>14s} {'train_wall_s':>14s} {'train_s':>14s}  val_bpb")
    for mode in modes:
        label = f"sandboxed ({mode})" if mode != "none" else "unsandboxed"
        bpbs = sorted({r["val_bpb"] for r in by_mode[mode]})
        print(f"{label:24s} {cell(mode, 'wall_s'):>14s} {cell(mode, 'train_wall_s'):>14s} {cell(mode, 'train_s'):>14s}  "
              f"{', '.join(bpbs)}")
    verdicts = []
    for column in ("train_wall_s", "wall_s"):
        boxed, bare = min(values(line, column)), min(values("none", column))
        extra = boxed - bare
        met = extra <= 2.0 or extra <= 0.03 * bare
        verdicts.append(f"{column} {extra:+.1f} s ({100 * extra / bare:+.1f}%) {'met' if met else 'NOT met'}")
    same = {r["val_bpb"] for rs in by_mode.values() for r in rs}
    print(f"sandbox cost, minimums (target <= 3% or 2 s): {'; '.join(verdicts)}")
    print(f"same val_bpb sandboxed and not: {'yes' if len(same) == 1 else 'NO: ' + ', '.join(sorted(same))}")


if __name__ == "__main__":
    main()
