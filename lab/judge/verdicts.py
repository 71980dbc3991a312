"""Verdicts a researcher can trust: keep, discard or inconclusive, from the ledger, with the numbers.

`noise` measures the baseline's seed-to-seed spread from results.tsv; `verdict` compares one slug's
runs with it; `calibration` scores the agent's predictions against what the runs showed. Two rows
are compared only when they share COMPARABLE (program.md §1, plus prepare_sha): a row of another
eval, data, budget or device is excluded, and every exclusion is counted and named.

Why Welch's t and not a bootstrap. A verdict sees 3 to 8 seeds per side. A bootstrap interval
resamples those few values, so it is too narrow (it never sees a value beyond the observed ones) and
unstable (it jumps with one run). Welch's t interval is exact when run-to-run noise is normal with a
common variance, stays close to its level when the two variances differ, and widens honestly at
small n through its degrees of freedom (t_{0.975} is 4.3 at df 2, not the normal 1.96).

The decision rule (group sequential, Bonferroni alpha spending). The experiment is looked at when it
has 3, 5 and 8 ok seeds (LOOKS, capped at max_seeds); each look tests at alpha_look = 0.05 / looks.
Let d = mean(exp) - mean(base) (negative = better) and t its one-sided 1 - alpha_look quantile:
- keep          iff the upper bound d + t·se < -min_effect (a gain of at least min_effect, credibly);
- discard       iff the lower bound d - t·se > -min_effect: significantly worse (> 0), or a
                worthwhile gain is ruled out;
- inconclusive  otherwise: run the seeds up to the next look (`more_seeds`). At the last look an
                inconclusive result becomes discard: "no detectable effect within N seeds".
A null experiment (true d = 0, min_effect ≥ 0) can be kept only by passing one of at most len(LOOKS)
tests of size alpha_look, so by the union bound the false-keep rate over the whole escalation is
≤ 0.05, whatever the correlation between looks (Welch's test is itself slightly conservative at
these sizes; bench/verdicts.py measures ~3%). The price is power and seeds: `mde`, the planning
formula (t_{1-alpha} + t_{power}) · std · sqrt(1/n_exp + 1/n_base), is 3.4 baseline std at the first
look with 3 seeds a side; a true gain that large is kept ~65% of the time at the first look and ~85%
by the last (the formula takes the df as known; the estimated std costs power at df ≈ 4). A null
experiment with min_effect = 0 runs to the last look (~7.8 seeds on average): only a significantly
worse result or a ruled-out min_effect stops it early. Results between looks (a crashed seed) are
judged at the same alpha_look; following `more_seeds` keeps the number of looks at len(LOOKS).

Repeated seeds: with a step budget the same seed gives the same val_bpb, so a second row of a seed is
not a new sample; only the newest row per (seed, train.py) counts ("repeated seed"). A slug's rows
count only with the train.py of its newest comparable row ("other train.py": a fix starts a new
sample), and with `train_sha`, the baseline's rows only with that train.py (after a merge).

Stdlib only (lab.judge.stats does the numerics): CLI commands import this and must stay fast.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field

from lab.judge import stats
from lab.names import BASELINE_SLUGS

COMPARABLE = ("eval_sha", "prepare_sha", "data_sha", "budget_s", "max_steps", "device")
ALPHA = 0.05  # the false-keep rate allowed over all looks of one experiment
LOOKS = (3, 5, 8)  # seeds of the experiment at which it is judged
POWER = 0.8  # the power `mde` plans for
LEVEL = 0.95  # the two-sided interval reported (lo, hi)

# Reasons a row does not count (keys of `excluded`).
NOT_OK = "not ok"
OTHER_KEY = "other hashes/budget/device"
OTHER_TRAIN = "other train.py"
REPEATED_SEED = "repeated seed"

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_PREDICTION = re.compile(rf"({_NUMBER})(?:\s*\(?\s*(?:±|\+/-|\+-)\s*({_NUMBER}))?")


class VerdictError(ValueError):
    """No verdict is possible (no baseline, no rows of the slug, bad argument); the message says the fix."""


@dataclass
class Noise:
    """The baseline's val_bpb over its comparable ok seeds, and what was left out and why."""

    mean: float
    std: float  # sample std; 0.0 with a single row
    n: int
    run_ids: list[str]
    key: dict[str, str]  # the COMPARABLE columns of the newest baseline row: what every comparison must share
    excluded: dict[str, int]
    mde: float | None  # `mde` for n seeds a side at the first look's alpha; None below 2 rows


@dataclass
class Verdict:
    """keep / discard / inconclusive for one slug against the baseline, with the numbers behind it."""

    slug: str
    kind: str  # "keep" | "discard" | "inconclusive"
    diff: float | None  # mean(slug) - mean(baseline); negative = better; None without rows on a side
    lo: float | None  # two-sided 95% Welch interval of diff; None below 2 rows a side
    hi: float | None
    p_better: float | None  # one-sided Welch p-value for "slug < baseline"
    n_exp: int
    n_base: int
    more_seeds: int  # seeds to run before the next look; 0 unless inconclusive
    min_effect: float
    alpha_look: float
    excluded: dict[str, int]  # the slug's rows left out, by reason
    reason: str
    run_ids: list[str]  # the slug's rows that count
    base_run_ids: list[str] = field(default_factory=list)  # the baseline's rows that count


def key(row: dict[str, str]) -> tuple:
    """The COMPARABLE columns of a row; budget_s as a float ("300" == "300.0")."""
    return tuple(float(row[c]) if c == "budget_s" else row[c] for c in COMPARABLE)


def looks(max_seeds: int = LOOKS[-1]) -> tuple[int, ...]:
    """The experiment sizes at which a verdict is taken: LOOKS capped at max_seeds, max_seeds the last."""
    if max_seeds < 2:
        raise VerdictError(f"max_seeds={max_seeds}: a verdict needs at least 2 seeds of the experiment")
    return tuple(sorted({min(n, max_seeds) for n in LOOKS} | {max_seeds}))


def mde(std: float, n_exp: int, n_base: int, alpha: float, power: float = POWER, min_effect: float = 0.0) -> float:
    """The planning formula for the smallest gain (val_bpb) a one-sided Welch test at `alpha` finds with `power`.

    (t_{1-alpha,df} + t_{power,df}) · std · sqrt(1/n_exp + 1/n_base) + min_effect, df = Welch's for equal stds.
    """
    if n_exp < 2 or n_base < 2:
        raise ValueError(f"mde needs at least 2 seeds a side, got n_exp={n_exp}, n_base={n_base}")
    df = stats.welch_df(n_exp, n_base)
    return (stats.t_ppf(1 - alpha, df) + stats.t_ppf(power, df)) * std * math.sqrt(1 / n_exp + 1 / n_base) + min_effect


def _counted(rows: list[dict[str, str]], excluded: Counter) -> list[dict[str, str]]:
    """The newest row per (seed, train.py); older repeats are counted as REPEATED_SEED."""
    newest = {(r["seed"], r["train_sha"]): i for i, r in enumerate(rows)}
    excluded[REPEATED_SEED] += len(rows) - len(newest)
    return [r for i, r in enumerate(rows) if newest[(r["seed"], r["train_sha"])] == i]


def _baseline(rows: list[dict[str, str]], train_sha: str | None) -> tuple[list[dict[str, str]], dict, Counter] | None:
    base = [r for r in rows if r["slug"] in BASELINE_SLUGS]
    ok = [r for r in base if r["status"] == "ok" and (train_sha is None or r["train_sha"] == train_sha)]
    if not ok:
        return None
    ref = ok[-1]  # the newest: file order is append order
    excluded, kept = Counter(), []
    for r in base:
        if r["status"] != "ok":
            excluded[NOT_OK] += 1
        elif train_sha is not None and r["train_sha"] != train_sha:
            excluded[OTHER_TRAIN] += 1
        elif key(r) != key(ref):
            excluded[OTHER_KEY] += 1
        else:
            kept.append(r)
    return _counted(kept, excluded), {c: ref[c] for c in COMPARABLE}, excluded


def noise(rows: list[dict[str, str]], train_sha: str | None = None, baseline=None) -> Noise | None:
    """The baseline's seed noise: ok rows of main/baseline sharing the newest one's key; None without any.
    `baseline`: baseline_sample(rows, train_sha), when the caller has it already."""
    found = baseline if baseline is not None else _baseline(rows, train_sha)
    if found is None:
        return None
    kept, ref, excluded = found
    values = [float(r["val_bpb"]) for r in kept]
    std = stats.std(values) if len(values) > 1 else 0.0
    first = ALPHA / len(looks())
    return Noise(mean=stats.mean(values), std=std, n=len(values), run_ids=[r["run_id"] for r in kept], key=ref,
                 excluded=_nonzero(excluded), mde=mde(std, len(values), len(values), first) if len(values) > 1 else None)


def _nonzero(counts: Counter) -> dict[str, int]:
    return {k: v for k, v in counts.items() if v}


def _sample(slug_rows: list[dict[str, str]], ref: dict[str, str]) -> tuple[list[dict[str, str]], Counter]:
    """A slug's rows that count against a baseline with key `ref`, and the others by reason."""
    want = key(ref)
    excluded, same = Counter(), []
    for r in slug_rows:
        if r["status"] != "ok":
            excluded[NOT_OK] += 1
        elif key(r) != want:
            excluded[OTHER_KEY] += 1
        else:
            same.append(r)
    if same:  # one program per sample: the train.py of the newest comparable row
        sha = same[-1]["train_sha"]
        excluded[OTHER_TRAIN] += sum(r["train_sha"] != sha for r in same)
        same = [r for r in same if r["train_sha"] == sha]
    return _counted(same, excluded), excluded


def _excluded_text(excluded: dict[str, int], ref: dict[str, str]) -> str:
    if not excluded:
        return ""
    text = "; excluded: " + ", ".join(f"{n} {why}" for why, n in excluded.items())
    if excluded.get(OTHER_KEY):  # say what a comparable run must match
        text += " (the baseline's: " + ", ".join(f"{c} {ref[c][:10] or '—'}" for c in COMPARABLE) + ")"
    return text


def _threshold(min_effect: float) -> str:
    return f"-{min_effect:.4f}" if min_effect else "0"


def _queue(slug: str, k: int) -> str:
    return f"run {k} more seed{'s' if k != 1 else ''}: `lab queue {slug} --q … --h … --seeds {k}`"


def baseline_sample(rows: list[dict[str, str]], train_sha: str | None = None):
    """The baseline's counted rows, key and exclusions, for many `verdict` calls over one ledger (None without)."""
    return _baseline(rows, train_sha)


def verdict(rows: list[dict[str, str]], slug: str, min_effect: float = 0.0, train_sha: str | None = None,
            max_seeds: int = LOOKS[-1], baseline=None) -> Verdict:
    """The verdict on `slug` against the baseline (see the module docstring for the rule).

    `baseline`: baseline_sample(rows, train_sha), computed once when judging many slugs of one ledger.
    """
    if slug in BASELINE_SLUGS:
        raise VerdictError(f"'{slug}' is the baseline: a verdict compares an experiment slug with it")
    if not (min_effect >= 0 and math.isfinite(min_effect)):
        raise VerdictError(f"min_effect={min_effect}: pass the smallest gain worth keeping, in val_bpb, ≥ 0")
    plan = looks(max_seeds)
    alpha_look = ALPHA / len(plan)
    found = baseline if baseline is not None else _baseline(rows, train_sha)
    if found is None:
        which = f" with train_sha {train_sha} (main's train.py)" if train_sha else ""
        raise VerdictError(f"no ok baseline rows{which} in results.tsv: run `just baseline`")
    base_rows, ref, _ = found
    slug_rows = [r for r in rows if r["slug"] == slug]
    if not slug_rows:
        raise VerdictError(f"no rows of '{slug}' in results.tsv: queue its seeds with "
                           f"`lab queue {slug} --q … --h … --seeds {plan[0]}`")
    exp_rows, excluded = _sample(slug_rows, ref)
    exp, base = [float(r["val_bpb"]) for r in exp_rows], [float(r["val_bpb"]) for r in base_rows]
    n_exp, n_base = len(exp), len(base)
    out = Verdict(slug=slug, kind="inconclusive", diff=None, lo=None, hi=None, p_better=None, n_exp=n_exp,
                  n_base=n_base, more_seeds=0, min_effect=min_effect, alpha_look=alpha_look,
                  excluded=_nonzero(excluded), reason="", run_ids=[r["run_id"] for r in exp_rows],
                  base_run_ids=[r["run_id"] for r in base_rows])
    tail = _excluded_text(out.excluded, ref)
    if n_exp and n_base:
        out.diff = stats.mean(exp) - stats.mean(base)
    if n_exp < 2 or n_base < 2:
        out.more_seeds = max(0, plan[0] - n_exp)
        shown = f"diff {out.diff:+.4f} val_bpb from " if out.diff is not None else ""
        todo = [_queue(slug, out.more_seeds)] if out.more_seeds else []
        todo += [f"run `just baseline` ({n_base} comparable baseline seed{'s' if n_base != 1 else ''})"] if n_base < 2 else []
        out.reason = (f"inconclusive: {shown}{n_exp} vs {n_base} baseline seeds; a verdict needs 2 a side; "
                      f"{' and '.join(todo)}{tail}")
        return out

    diff, se, df = stats.welch(exp, base)
    out.lo, out.hi = stats.interval(diff, se, df, LEVEL)
    out.p_better = stats.p_below(diff, se, df)
    t = stats.t_ppf(1 - alpha_look, df)
    upper, lower = diff + t * se, diff - t * se
    conf = f"{100 * (1 - alpha_look):.1f}%"
    numbers = (f"diff {diff:+.4f} val_bpb (95% CI {out.lo:+.4f} to {out.hi:+.4f}), {n_exp} vs {n_base} seeds, "
               f"p(better) {out.p_better:.3g} vs alpha {alpha_look:.3g} per look")
    if upper < -min_effect:
        out.kind = "keep"
        out.reason = f"keep: {numbers}; the {conf} upper bound {upper:+.4f} is below {_threshold(min_effect)}{tail}"
    elif lower > 0:
        out.kind = "discard"
        out.reason = f"discard: worse than the baseline: {numbers}; the {conf} lower bound {lower:+.4f} is above 0{tail}"
    elif lower > -min_effect:
        out.kind = "discard"
        out.reason = (f"discard: a gain of {min_effect:.4f} is ruled out: {numbers}; the {conf} lower bound "
                      f"{lower:+.4f} is above {_threshold(min_effect)}{tail}")
    elif n_exp >= plan[-1]:
        out.kind = "discard"
        out.reason = f"discard: no detectable effect within {plan[-1]} seeds: {numbers}{tail}"
    else:
        out.more_seeds = next(n for n in plan if n > n_exp) - n_exp
        detectable = mde(math.sqrt((stats.variance(exp) + stats.variance(base)) / 2), n_exp, n_base, alpha_look,
                         min_effect=min_effect)
        out.reason = (f"inconclusive: {numbers}; the gain this n is planned to detect (mde) is ~{detectable:.4f}; "
                      f"{_queue(slug, out.more_seeds)}{tail}")
    return out


def parse_prediction(text: str) -> tuple[float | None, float | None]:
    """(value, plus_minus) from text like "expect -0.02 ± 0.01 val_bpb"; (None, None) without a number."""
    text = (text or "").replace("\u2212", "-")  # the unicode minus sign
    m = _PREDICTION.search(text)
    if not m:
        return None, None
    return float(m[1]), abs(float(m[2])) if m[2] else None


def _hypothesis(label: str) -> str:
    """The `--h` text of a queue label "Q: … H: …" (the whole label when it has no H: part)."""
    return label.partition(" H: ")[2] if " H: " in label else label


def _predicted(slug_rows: list[dict[str, str]], fallback: float | str | None) -> tuple[float | None, float | None, str | None]:
    """(value, plus_minus, source) of a slug's prediction: its newest row's predicted_delta, else the idea's."""
    given = [r for r in slug_rows if r["predicted_delta"]]
    if given:
        value = float(given[-1]["predicted_delta"])
        # The ± is only in the label's --h text; take it from the newest label that states this value.
        for r in reversed(given):
            said, pm = parse_prediction(_hypothesis(r["label"]))
            if said is not None and pm is not None and math.isclose(said, value, abs_tol=1e-12):
                return value, pm, "ledger"
        return value, None, "ledger"
    if isinstance(fallback, str):
        value, pm = parse_prediction(fallback)
        return value, pm, "idea" if value is not None else None
    if fallback is not None:
        return float(fallback), None, "idea"
    return None, None, None


def calibration(rows: list[dict[str, str]], ideas_predictions: dict[str, float | str | None] | None = None,
                train_sha: str | None = None) -> dict:
    """Predicted vs observed delta per slug and overall: sign agreement, absolute error, inside the ± range.

    Per slug: predicted (float|None), plus_minus, source ("ledger"|"idea"|None), observed (mean of the
    slug's comparable ok rows - baseline mean), n, sign_agrees (None when either is missing or the
    prediction is 0), abs_error, inside (None without a ± range). Overall: n (slugs with both numbers),
    sign_agreement (fraction), mean_abs_error, n_with_range, inside (fraction), baseline mean and n.
    """
    ideas_predictions = ideas_predictions or {}
    base = noise(rows, train_sha)
    by_slug: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        if r["slug"] not in BASELINE_SLUGS:
            by_slug.setdefault(r["slug"], []).append(r)
    slugs = {}
    for slug, slug_rows in by_slug.items():
        predicted, pm, source = _predicted(slug_rows, ideas_predictions.get(slug))
        counted = _sample(slug_rows, base.key)[0] if base else []
        observed = stats.mean([float(r["val_bpb"]) for r in counted]) - base.mean if counted else None
        both = predicted is not None and observed is not None
        slugs[slug] = {
            "predicted": predicted, "plus_minus": pm, "source": source, "observed": observed, "n": len(counted),
            "sign_agrees": (predicted > 0) == (observed > 0) if both and predicted != 0 and observed != 0 else None,
            "abs_error": abs(observed - predicted) if both else None,
            "inside": predicted - pm <= observed <= predicted + pm if both and pm is not None else None,
        }
    scored = [s for s in slugs.values() if s["abs_error"] is not None]
    signed = [s["sign_agrees"] for s in scored if s["sign_agrees"] is not None]
    ranged = [s["inside"] for s in scored if s["inside"] is not None]
    overall = {
        "n": len(scored),
        "sign_agreement": sum(signed) / len(signed) if signed else None,
        "mean_abs_error": stats.mean([s["abs_error"] for s in scored]) if scored else None,
        "n_with_range": len(ranged),
        "inside": sum(ranged) / len(ranged) if ranged else None,
        "baseline_mean": base.mean if base else None,
        "baseline_n": base.n if base else 0,
    }
    return {"slugs": slugs, "overall": overall}
