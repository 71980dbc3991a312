"""Benchmark of the verdict rule (lab/judge/verdicts.py): false keeps on null experiments, power, real runs.

(a) K simulated null experiments (the change does nothing): val_bpb drawn from the measured noise,
    a 3-seed baseline, the FULL sequential rule (3 seeds, then 5, then 8 when inconclusive). Prints
    the false-keep rate of our rule (target ≤ 5%) next to the greedy single-run rule ("keep if one
    run's val_bpb < one baseline run's", ≈ 50%) and program.md §7's rule (3 seeds, mean below the
    baseline's by more than 2 baseline std).
(b) The same with a true gain equal to the MDE at the first look (3 vs 3 seeds): the power of our
    rule (target ≥ 80%) and the seeds it used.
(c) With --real N: N real seed-only CPU runs of the unchanged code (`just eval --seed s --max-steps
    STEPS --device cpu --source CORPUS`) in a throwaway clone, as bench/foundation.py does; every
    split of them into a baseline and an experiment group is a null experiment for both rules.

The noise model is the ledger's baseline when it has ≥ 3 comparable ok rows, else mean 2.0 and
std 0.01 (the printout says which). Reproducible: random.Random(--seed).
Run from the root checkout: `.venv/bin/python bench/verdicts.py [--trials 20000] [--real N]`;
(a)+(b) take ~20 s for 20,000 trials; (c) ~1.5-2 min a run on a 2-core CPU (20 steps, the small corpus).
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from lab import ledger  # noqa: E402
from lab.judge import verdicts  # noqa: E402

DEFAULT_MEAN, DEFAULT_STD = 2.0, 0.01
BASE_SEEDS = 3
# A small real corpus for (c): the stdlib's unittest package (~0.9 MB of .py, ~53 KB of val), so that
# grading takes seconds instead of the ~2 minutes the full 512 KiB val slice costs on a CPU.
SMALL_CORPUS = "unittest"


def template() -> dict[str, str]:
    """A ledger row with every column, comparable with every other one made from it."""
    r = {c: "" for c in ledger.COLUMNS}
    r.update(status="ok", eval_sha="e" * 16, prepare_sha="a" * 16, data_sha="d" * 16, budget_s="300",
             device="cuda", train_sha="f" * 16)
    return r


TEMPLATE = template()


def rows_of(slug: str, values: list[float], first_seed: int = 0) -> list[dict[str, str]]:
    return [{**TEMPLATE, "run_id": f"{slug}{s}", "slug": slug, "seed": str(s), "val_bpb": repr(v)}
            for s, v in enumerate(values, first_seed)]


def sequential(rng: random.Random, mean: float, std: float, effect: float, base: list[float],
               min_effect: float) -> verdicts.Verdict:
    """One experiment under the full rule: 3 seeds, then the seeds each inconclusive verdict asks for."""
    rows = rows_of("main", base) + rows_of("exp", [rng.gauss(mean - effect, std) for _ in range(3)])
    while (v := verdicts.verdict(rows, "exp", min_effect=min_effect)).kind == "inconclusive":
        rows += rows_of("exp", [rng.gauss(mean - effect, std) for _ in range(v.more_seeds)], v.n_exp)
    return v


def program_rule(exp: list[float], base: list[float]) -> bool:
    """program.md §7: keep when the 3-seed mean is below the baseline mean by more than 2 baseline std."""
    return statistics.fmean(exp) < statistics.fmean(base) - 2 * statistics.stdev(base)


def simulate(trials: int, mean: float, std: float, effect: float, seed: int, min_effect: float = 0.0) -> dict:
    """Keep rates (and seeds used) of the three rules over `trials` experiments with a true gain `effect`."""
    rng = random.Random(seed)
    ours = greedy = program = first_look = 0
    seeds: list[int] = []
    for _ in range(trials):
        base = [rng.gauss(mean, std) for _ in range(BASE_SEEDS)]
        state = rng.getstate()
        v = sequential(rng, mean, std, effect, base, min_effect)
        ours += v.kind == "keep"
        first_look += v.kind == "keep" and v.n_exp == 3
        seeds.append(v.n_exp)
        rng.setstate(state)  # the other rules see the same first three experiment runs
        exp = [rng.gauss(mean - effect, std) for _ in range(3)]
        greedy += exp[0] < base[0]
        program += program_rule(exp, base)
    return {"ours": ours / trials, "first_look": first_look / trials, "greedy": greedy / trials,
            "program": program / trials, "seeds": statistics.fmean(seeds), "trials": trials}


def noise_model() -> tuple[float, float, str]:
    path = ROOT / ledger.FILENAME
    rows = ledger.read(path)[0] if path.exists() else []
    n = verdicts.noise(rows)
    if n is not None and n.n >= 3:
        return n.mean, n.std, f"the ledger's baseline: n={n.n}, mean {n.mean:.4f}, std {n.std:.4f}"
    have = f"{n.n} comparable baseline row(s)" if n else "no ok baseline rows"
    return DEFAULT_MEAN, DEFAULT_STD, f"default mean {DEFAULT_MEAN}, std {DEFAULT_STD} ({have} in results.tsv; ≥ 3 needed)"


def pct(p: float, trials: int) -> str:
    """A rate with its binomial standard error."""
    return f"{100 * p:5.1f}% ± {100 * math.sqrt(p * (1 - p) / trials):.1f}"


def simulated(trials: int, seed: int, min_effect: float) -> None:
    mean, std, source = noise_model()
    alpha = verdicts.ALPHA / len(verdicts.looks())
    effect = verdicts.mde(std, 3, 3, alpha, min_effect=min_effect)
    start = time.perf_counter()
    null = simulate(trials, mean, std, 0.0, seed, min_effect)
    real = simulate(trials, mean, std, effect, seed + 1, min_effect)
    secs = time.perf_counter() - start
    print(f"noise model: {source}")
    print(f"trials: {trials} null + {trials} with a true gain of {effect:.4f} val_bpb = MDE at the first look "
          f"(3 vs 3 seeds, alpha {alpha:.4f}, power 0.8; {effect / std:.2f} std); min_effect {min_effect}; "
          f"random.Random({seed}); {secs:.0f} s")
    print()
    print(f"{'rule':46s} {'false keeps (null)':>19s}  {'keeps at the MDE':>17s}  {'mean seeds null/MDE':>19s}")
    print(f"{'ours: Welch, looks at 3/5/8 seeds, 0.05/3 each':46s} {pct(null['ours'], trials):>19s}  "
          f"{pct(real['ours'], trials):>17s}  {null['seeds']:>9.2f} / {real['seeds']:.2f}")
    print(f"{'  of which at the first look (3 seeds)':46s} {pct(null['first_look'], trials):>19s}  "
          f"{pct(real['first_look'], trials):>17s}")
    print(f"{'greedy: 1 run < 1 baseline run':46s} {pct(null['greedy'], trials):>19s}  "
          f"{pct(real['greedy'], trials):>17s}  {1:>9.2f} / {1:.2f}")
    print(f"{'program.md §7: 3-seed mean < m - 2 s':46s} {pct(null['program'], trials):>19s}  "
          f"{pct(real['program'], trials):>17s}  {3:>9.2f} / {3:.2f}")
    ok = null["ours"] <= verdicts.ALPHA and real["ours"] >= verdicts.POWER
    print(f"targets: false keeps <= 5% and power >= 80%: {'met' if ok else 'NOT met'}")


def just(clone: Path, *args: str) -> float:
    """Run `just ARGS` in the clone with this Python; seconds taken. Exits on a setup failure."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAB_", "PUEUE_"))}
    env["LAB_PYTHON"] = sys.executable
    start = time.perf_counter()
    proc = subprocess.run([str(Path(sys.executable).parent / "just"), *args], cwd=clone, env=env,
                          capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        sys.exit(f"`just {' '.join(args)}` failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start


def small_corpus(dest: Path) -> Path:
    """A copy of the .py files of the stdlib's unittest package: a small, real text tree."""
    source = Path(sysconfig.get_paths()["stdlib"]) / SMALL_CORPUS
    for path in sorted(source.rglob("*.py")):
        target = dest / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return dest


def real(n: int, steps: int, source: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="lab-bench-verdicts-") as tmp:
        clone = Path(tmp) / "ws"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        (clone / ".venv").symlink_to(ROOT / ".venv")
        if source == "default":
            corpus_args, corpus = [], "the default source (the stdlib, 512 KiB of val)"
        else:
            path = Path(source) if source else small_corpus(Path(tmp) / "corpus")
            corpus_args, corpus = ["--source", str(path)], str(source or f"stdlib {SMALL_CORPUS}/ (copied .py files)")
        just(clone, "prepare", *corpus_args)  # build the cache once, outside the timings
        before = len(ledger.read(clone / ledger.FILENAME)[0])  # the clone's committed rows are not ours
        secs = []
        for seed in range(n):
            # A generous hard limit: a busy CPU must not turn a slow run into a timeout row.
            secs.append(just(clone, "eval", "--seed", str(seed), "--max-steps", str(steps), "--device", "cpu",
                             "--hard-limit-s", "1800", *corpus_args))
            print(f"  real run seed {seed}: {secs[-1]:.0f} s", file=sys.stderr, flush=True)
        rows, problems = ledger.read(clone / ledger.FILENAME)
        rows = rows[before:]
    ok = [r for r in rows if r["status"] == "ok"]
    values = [float(r["val_bpb"]) for r in ok]
    print()
    print(f"real runs: {n} x `just eval --seed s --max-steps {steps} --device cpu`, corpus {corpus}; "
          f"{len(ok)} ok, {len(problems)} ledger problems; {statistics.fmean(secs):.0f} s a run")
    print(f"val_bpb by seed: {', '.join(f'{v:.4f}' for v in values)}")
    for r in rows:
        if r["status"] != "ok":
            print(f"not ok: seed {r['seed']} {r['status']}: {r['reason'][:150]}")
    if len(values) < 4:
        print("fewer than 4 ok runs: no split has 2 runs a side; see the rows' reasons")
        return
    print(f"seed noise: mean {statistics.fmean(values):.4f}, std {statistics.stdev(values):.4f}")
    size = len(values) // 2  # experiment group; the baseline gets the rest
    counts = {"keep": 0, "discard": 0, "inconclusive": 0}
    greedy = pairs = program = 0
    for exp_idx in itertools.combinations(range(len(values)), size):
        exp = [values[i] for i in exp_idx]
        base = [values[i] for i in range(len(values)) if i not in exp_idx]
        v = verdicts.verdict(rows_of("main", base) + rows_of("exp", exp), "exp")
        counts[v.kind] += 1
        program += len(exp) == 3 and len(base) >= 2 and program_rule(exp, base)
    for i, j in itertools.permutations(range(len(values)), 2):  # every (experiment run, baseline run) pair
        greedy += values[i] < values[j]
        pairs += 1
    splits = sum(counts.values())
    print(f"{'rule':46s} {'false keeps':>16s}   other outcomes")
    print(f"{f'ours ({size} vs {len(values) - size} seeds, every split)':46s} {counts['keep']:>3d} of {splits:<3d}"
          f"{100 * counts['keep'] / splits:6.1f}%   discard {counts['discard']}, inconclusive {counts['inconclusive']}"
          f" (no seeds left for a next look)")
    print(f"{'greedy: 1 run < 1 baseline run (every pair)':46s} {greedy:>3d} of {pairs:<3d}{100 * greedy / pairs:6.1f}%")
    if size == 3:
        print(f"{'program.md §7 (every split)':46s} {program:>3d} of {splits:<3d}{100 * program / splits:6.1f}%")
    print("(splits share runs: they are not independent trials; the simulation above gives the rates)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20000, help="simulated experiments per scenario")
    parser.add_argument("--seed", type=int, default=0, help="random.Random seed of the simulation")
    parser.add_argument("--real", type=int, default=0, metavar="N", help="also run N real seed-only CPU evals")
    parser.add_argument("--min-effect", type=float, default=0.0, help="the verdicts' min_effect (val_bpb)")
    parser.add_argument("--steps", type=int, default=20, help="--max-steps of each real run")
    parser.add_argument("--source", default=None,
                        help=f"corpus of the real runs: a directory, 'default' (the stdlib), or unset (stdlib {SMALL_CORPUS}/)")
    args = parser.parse_args()
    if args.trials < 1:
        parser.error(f"--trials {args.trials}: simulate at least one experiment")
    simulated(args.trials, args.seed, args.min_effect)
    if args.real:
        real(args.real, args.steps, args.source)


if __name__ == "__main__":
    main()
