"""lab/judge/verdicts.py on constructed ledgers, written with ledger.append and read back (the real schema).

Cost: ~1.5 s (simulated null experiments included), pure Python, no git; fast set.
Run: `just test tests/unit/test_verdicts.py`.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest

from lab import ledger, names
from lab.judge import verdicts
from lab.judge.verdicts import NOT_OK, OTHER_KEY, OTHER_TRAIN, REPEATED_SEED, VerdictError

SHAS = {"eval_sha": "e" * 16, "prepare_sha": "a" * 16, "data_sha": "d" * 16}
MAIN_TRAIN, EXP_TRAIN = "b" * 16, "f" * 16
_ids = itertools.count()


def row(slug: str, seed: int, val_bpb: float | None, status: str = "ok", **over: str) -> dict[str, str]:
    """A complete ledger row (every column, as text) of a run of `slug`."""
    r = {c: "" for c in ledger.COLUMNS}
    r.update(run_id=f"r{next(_ids):04d}-{slug}", time="2026-01-31T12:00:00Z", slug=slug,
             branch="main" if slug in names.BASELINE_SLUGS else f"exp/{slug}", commit="c" * 40, dirty="0",
             status=status, reason="" if status == "ok" else "Traceback: boom", wall_s="330.5", seed=str(seed),
             budget_s="300", device="cuda", host="box", train_sha=MAIN_TRAIN if slug == "main" else EXP_TRAIN,
             val_bpb="" if val_bpb is None else repr(val_bpb), **SHAS)
    r.update(over)
    return r


def base_rows(values=(2.000, 2.010, 1.990), **over: str) -> list[dict[str, str]]:
    return [row("main", seed, v, **over) for seed, v in enumerate(values)]


def exp_rows(slug: str, values, start: int = 0, **over: str) -> list[dict[str, str]]:
    return [row(slug, seed, v, **over) for seed, v in enumerate(values, start)]


def ledger_of(tmp_path: Path, rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """Write `rows` to a fresh results.tsv through ledger.append and read them back."""
    path = tmp_path / "results.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(ledger.HEADER)
    for r in rows:
        ledger.append(r, path)
    read, problems = ledger.read(path)
    assert problems == []
    assert len(read) == len(rows)
    return read


def test_clear_win_is_kept(tmp_path):
    rows = ledger_of(tmp_path, base_rows() + exp_rows("wider", [1.900, 1.905, 1.895]))
    v = verdicts.verdict(rows, "wider")
    assert v.kind == "keep"
    assert v.diff == pytest.approx(-0.1)
    assert v.lo < v.diff < v.hi < 0
    assert v.p_better < v.alpha_look == pytest.approx(0.05 / 3)
    assert (v.n_exp, v.n_base, v.more_seeds, v.excluded) == (3, 3, 0, {})
    assert v.run_ids == [r["run_id"] for r in rows[3:]]
    assert v.base_run_ids == [r["run_id"] for r in rows[:3]]
    assert v.reason.startswith("keep: diff -0.1000 val_bpb")


def test_clear_loss_is_discarded(tmp_path):
    rows = ledger_of(tmp_path, base_rows() + exp_rows("narrow", [2.100, 2.110, 2.090]))
    v = verdicts.verdict(rows, "narrow")
    assert v.kind == "discard"
    assert v.diff == pytest.approx(0.1)
    assert v.p_better > 0.99
    assert v.more_seeds == 0
    assert "worse than the baseline" in v.reason


def test_pure_noise_asks_for_more_seeds_then_gives_up_at_the_last_look(tmp_path):
    values = [2.005, 1.995, 2.008, 1.992, 2.001, 2.009, 1.994, 2.000]
    rows = base_rows()
    v = verdicts.verdict(ledger_of(tmp_path / "3", rows + exp_rows("noise", values[:3])), "noise")
    assert (v.kind, v.n_exp, v.more_seeds) == ("inconclusive", 3, 2)
    assert "run 2 more seeds: `lab queue noise --q … --h … --seeds 2`" in v.reason
    assert v.lo < 0 < v.hi
    v = verdicts.verdict(ledger_of(tmp_path / "5", rows + exp_rows("noise", values[:5])), "noise")
    assert (v.kind, v.n_exp, v.more_seeds) == ("inconclusive", 5, 3)
    v = verdicts.verdict(ledger_of(tmp_path / "8", rows + exp_rows("noise", values)), "noise")
    assert (v.kind, v.n_exp, v.more_seeds) == ("discard", 8, 0)
    assert v.reason.startswith("discard: no detectable effect within 8 seeds")
    # With a smaller bound the looks are 3 and 4, each at 0.05 / 2.
    v = verdicts.verdict(ledger_of(tmp_path / "4", rows + exp_rows("noise", values[:4])), "noise", max_seeds=4)
    assert (v.kind, v.alpha_look) == ("discard", 0.025)


def test_one_seed_is_inconclusive_and_asks_for_two_more(tmp_path):
    rows = ledger_of(tmp_path, base_rows() + exp_rows("one", [1.9]))
    v = verdicts.verdict(rows, "one")
    assert (v.kind, v.n_exp, v.more_seeds) == ("inconclusive", 1, 2)
    assert v.diff == pytest.approx(-0.1)
    assert (v.lo, v.hi, v.p_better) == (None, None, None)
    assert "run 2 more seeds: `lab queue one --q … --h … --seeds 2`" in v.reason


def test_incomparable_and_failed_rows_are_excluded_and_counted(tmp_path):
    good = exp_rows("mix", [1.900, 1.905], budget_s="300.0")  # 300.0 is the baseline's budget of 300
    other = [row("mix", 5, 1.5, eval_sha="9" * 16), row("mix", 6, 1.5, budget_s="600"),
             row("mix", 7, 1.5, device="cpu"), row("mix", 8, 1.5, max_steps="20"),
             row("mix", 9, 1.5, prepare_sha="7" * 16)]
    failed = [row("mix", 2, None, status="crash"), row("mix", 3, None, status="timeout")]
    rows = ledger_of(tmp_path, base_rows() + good + other + failed + exp_rows("mix", [1.895], start=4))
    v = verdicts.verdict(rows, "mix")
    assert v.excluded == {OTHER_KEY: 5, NOT_OK: 2}
    assert (v.n_exp, v.kind) == (3, "keep")
    assert v.run_ids == [good[0]["run_id"], good[1]["run_id"], rows[-1]["run_id"]]
    assert "excluded: 5 other hashes/budget/device, 2 not ok (the baseline's: eval_sha eeeeeeeeee" in v.reason


def test_only_incomparable_rows_leave_nothing_to_judge(tmp_path):
    rows = ledger_of(tmp_path, base_rows() + exp_rows("gpu2", [1.5, 1.5, 1.5], device="cuda:1"))
    v = verdicts.verdict(rows, "gpu2")
    assert (v.kind, v.n_exp, v.more_seeds, v.diff) == ("inconclusive", 0, 3, None)
    assert v.excluded == {OTHER_KEY: 3}
    assert "device cuda" in v.reason


def test_zero_baseline_rows_is_an_error_naming_just_baseline(tmp_path):
    rows = ledger_of(tmp_path, [row("main", 0, None, status="crash")] + exp_rows("x", [1.9, 1.9, 1.9]))
    with pytest.raises(VerdictError, match=r"no ok baseline rows in results.tsv: run `just baseline`"):
        verdicts.verdict(rows, "x")
    assert verdicts.noise(rows) is None
    with pytest.raises(VerdictError, match=r"no ok baseline rows with train_sha 0123456 .*`just baseline`"):
        verdicts.verdict(ledger_of(tmp_path / "3", base_rows()), "x", train_sha="0123456")


def test_zero_rows_of_the_slug_is_an_error(tmp_path):
    rows = ledger_of(tmp_path, base_rows())
    with pytest.raises(VerdictError, match=r"no rows of 'ghost' in results.tsv: .*lab queue ghost"):
        verdicts.verdict(rows, "ghost")
    with pytest.raises(VerdictError, match="'main' is the baseline"):
        verdicts.verdict(rows, "main")
    with pytest.raises(VerdictError, match="min_effect=-0.01"):
        verdicts.verdict(rows, "ghost", min_effect=-0.01)


def test_mixed_hashes_in_the_baseline_are_excluded_and_counted(tmp_path):
    old = base_rows([2.5, 2.6], data_sha="0" * 16) + [row("baseline", 2, 2.4, budget_s="60")]
    crash = [row("main", 9, None, status="killed")]
    rows = ledger_of(tmp_path, old + crash + base_rows())
    n = verdicts.noise(rows)
    assert n.excluded == {OTHER_KEY: 3, NOT_OK: 1}
    assert (n.n, n.mean) == (3, pytest.approx(2.0))
    assert n.std == pytest.approx(0.01)
    assert n.run_ids == [r["run_id"] for r in rows[-3:]]
    assert n.key == {**SHAS, "budget_s": "300", "max_steps": "", "device": "cuda"}
    # mde at the first look, 3 seeds a side: (t_{1-0.05/3, 4} + t_{0.8, 4}) * 0.01 * sqrt(2/3).
    assert n.mde == pytest.approx((3.186316 + 0.940965) * 0.01 * (2 / 3) ** 0.5, rel=1e-5)
    # The newest baseline row sets the key: a newer row on another budget makes the old ones incomparable.
    newer = ledger_of(tmp_path / "3", old + crash + base_rows() + [row("main", 0, 2.3, budget_s="60")])
    n = verdicts.noise(newer)
    assert (n.n, n.mean, n.key["budget_s"]) == (2, pytest.approx(2.35), "60")
    assert n.excluded == {OTHER_KEY: 5, NOT_OK: 1}


def test_baseline_of_another_train_py_does_not_count(tmp_path):
    before_merge = base_rows([2.2, 2.3, 2.1], train_sha="1" * 16)
    rows = ledger_of(tmp_path, before_merge + base_rows() + exp_rows("e", [1.9, 1.91, 1.89]))
    n = verdicts.noise(rows, train_sha=MAIN_TRAIN)
    assert (n.n, n.mean, n.excluded) == (3, pytest.approx(2.0), {OTHER_TRAIN: 3})
    assert verdicts.noise(rows).excluded == {}  # without train_sha every train.py counts
    v = verdicts.verdict(rows, "e", train_sha=MAIN_TRAIN)
    assert (v.n_base, v.diff) == (3, pytest.approx(-0.1))


def test_the_slug_counts_only_its_newest_train_py_and_one_row_per_seed(tmp_path):
    buggy = exp_rows("fix", [2.5, 2.6], train_sha="2" * 16)
    fixed = exp_rows("fix", [1.90, 1.91, 1.89])
    again = [row("fix", 0, 1.90)]  # seed 0 rerun with the same train.py: not a new sample
    rows = ledger_of(tmp_path, base_rows() + base_rows() + buggy + fixed + again)
    v = verdicts.verdict(rows, "fix")
    assert v.excluded == {OTHER_TRAIN: 2, REPEATED_SEED: 1}
    assert v.n_exp == 3 and v.n_base == 3  # the baseline's repeated seeds count once too
    assert v.run_ids == [r["run_id"] for r in (fixed[1], fixed[2], again[0])]
    assert verdicts.noise(rows).excluded == {REPEATED_SEED: 3}


def test_min_effect_rules_out_small_gains(tmp_path):
    rows = ledger_of(tmp_path, base_rows() + exp_rows("tiny", [1.995, 1.990, 2.000]))
    v = verdicts.verdict(rows, "tiny", min_effect=0.1)
    assert v.kind == "discard"
    assert "a gain of 0.1000 is ruled out" in v.reason
    # The same rows without a minimum effect are not decided yet.
    assert verdicts.verdict(rows, "tiny").kind == "inconclusive"
    # A real gain smaller than min_effect is not kept.
    win = ledger_of(tmp_path / "3", base_rows() + exp_rows("win", [1.900, 1.905, 1.895]))
    assert verdicts.verdict(win, "win", min_effect=0.2).kind == "discard"
    assert verdicts.verdict(win, "win", min_effect=0.05).kind == "keep"


def test_one_baseline_seed_asks_for_the_baseline(tmp_path):
    rows = ledger_of(tmp_path, base_rows([2.0]) + exp_rows("b1", [1.9, 1.9, 1.9]))
    v = verdicts.verdict(rows, "b1")
    assert (v.kind, v.more_seeds, v.n_base) == ("inconclusive", 0, 1)
    assert "run `just baseline`" in v.reason
    assert verdicts.noise(rows).mde is None


def test_mde_by_hand():
    # (t_{0.95, 4} + t_{0.8, 4}) * std * sqrt(1/3 + 1/3) = (2.131847 + 0.940965) * 0.01 * 0.8164966 = 0.0250894
    assert verdicts.mde(0.01, 3, 3, 0.05) == pytest.approx(0.0250894, abs=2e-7)
    assert verdicts.mde(0.01, 3, 3, 0.05, min_effect=0.005) == pytest.approx(0.0300894, abs=2e-7)
    assert verdicts.looks() == (3, 5, 8)
    assert verdicts.looks(4) == (3, 4) and verdicts.looks(12) == (3, 5, 8, 12) and verdicts.looks(2) == (2,)


def test_key_compares_budget_as_a_number():
    a = row("x", 0, 2.0, budget_s="300")
    assert verdicts.key(a) == verdicts.key({**a, "budget_s": "300.0"})
    assert verdicts.key(a) != verdicts.key({**a, "max_steps": "20"})


def test_null_experiments_are_rarely_kept():
    """The union bound in a small simulation: 0.05 at most over all three looks (bench/verdicts.py: 20,000)."""
    rng = random.Random(1)
    keeps = 0
    for _ in range(300):
        rows = [row("main", s, rng.gauss(2.0, 0.01)) for s in range(3)]
        rows += [row("null", s, rng.gauss(2.0, 0.01)) for s in range(3)]
        while (v := verdicts.verdict(rows, "null")).kind == "inconclusive":
            rows += [row("null", v.n_exp + s, rng.gauss(2.0, 0.01)) for s in range(v.more_seeds)]
        keeps += v.kind == "keep"
    assert keeps / 300 <= 0.05


def test_calibration_by_hand(tmp_path):
    rows = base_rows([2.00, 2.02, 1.98])  # baseline mean 2.00
    # a: predicted -0.02 ± 0.005 in the queue label; observed (1.96 + 1.98) / 2 - 2.00 = -0.03: sign right,
    # |error| 0.01, outside [-0.025, -0.015].
    rows += exp_rows("a", [1.96, 1.98], predicted_delta="-0.02", label="Q: wider? H: expect -0.02 ± 0.005 val_bpb")
    # b: no number in the ledger, -0.01 from the idea; observed (2.03 + 2.05) / 2 - 2.00 = +0.04: sign wrong,
    # |error| 0.05, no range.
    rows += exp_rows("b", [2.03, 2.05], label="Q: deeper? H: expect a small gain")
    # c: predicted -0.05 +/- 0.1; observed 1.99 - 2.00 = -0.01 (the crash does not count): sign right,
    # |error| 0.04, inside [-0.15, 0.05].
    rows += exp_rows("c", [1.99], predicted_delta="-0.05", label="Q: lr? H: -0.05 +/- 0.1")
    rows += [row("c", 1, None, status="crash", predicted_delta="-0.05")]
    rows += exp_rows("d", [2.1])  # no prediction anywhere: not scored
    rows += [row("e", 0, None, status="crash", predicted_delta="-0.01")]  # no ok run: not scored
    cal = verdicts.calibration(ledger_of(tmp_path, rows), {"b": -0.01, "d": None})
    a, b, c, d, e = (cal["slugs"][s] for s in "abcde")
    assert a == {"predicted": -0.02, "plus_minus": 0.005, "source": "ledger", "observed": pytest.approx(-0.03),
                 "n": 2, "sign_agrees": True, "abs_error": pytest.approx(0.01), "inside": False}
    assert b == {"predicted": -0.01, "plus_minus": None, "source": "idea", "observed": pytest.approx(0.04),
                 "n": 2, "sign_agrees": False, "abs_error": pytest.approx(0.05), "inside": None}
    assert c == {"predicted": -0.05, "plus_minus": 0.1, "source": "ledger", "observed": pytest.approx(-0.01),
                 "n": 1, "sign_agrees": True, "abs_error": pytest.approx(0.04), "inside": True}
    assert (d["predicted"], d["observed"], d["abs_error"]) == (None, pytest.approx(0.1), None)
    assert (e["predicted"], e["observed"], e["n"], e["abs_error"]) == (-0.01, None, 0, None)
    # Overall over a, b, c: signs 2 of 3 right; mean |error| (0.01 + 0.05 + 0.04) / 3 = 0.0333…;
    # of the 2 with a range, 1 inside.
    assert cal["overall"] == {"n": 3, "sign_agreement": pytest.approx(2 / 3), "mean_abs_error": pytest.approx(0.1 / 3),
                              "n_with_range": 2, "inside": 0.5, "baseline_mean": pytest.approx(2.0), "baseline_n": 3}


def test_calibration_takes_the_ideas_text_and_survives_no_baseline(tmp_path):
    rows = ledger_of(tmp_path, exp_rows("a", [1.9]))
    cal = verdicts.calibration(rows, {"a": "expect −0.03 ± 0.01 val_bpb"})
    assert cal["slugs"]["a"]["predicted"] == -0.03 and cal["slugs"]["a"]["plus_minus"] == 0.01
    assert cal["slugs"]["a"]["observed"] is None
    assert cal["overall"]["n"] == 0 and cal["overall"]["mean_abs_error"] is None


@pytest.mark.parametrize("text, expected", [
    ("expect -0.02 ± 0.01 val_bpb", (-0.02, 0.01)),
    ("-0.02 +/- 0.01", (-0.02, 0.01)),
    ("-0.02 +- 0.01", (-0.02, 0.01)),
    ("expect -0.02 (± 0.005)", (-0.02, 0.005)),
    ("-0.02", (-0.02, None)),
    ("\u22120.02", (-0.02, None)),
    ("expect \u22120.02 \u00b1 \u22120.01 val_bpb", (-0.02, 0.01)),
    ("expect 0", (0.0, None)),
    ("+.5e-2 val_bpb lower", (0.005, None)),
    ("expect a small gain", (None, None)),
    ("", (None, None)),
])
def test_parse_prediction(text, expected):
    assert verdicts.parse_prediction(text) == expected


def test_a_baseline_sample_computed_once_gives_the_same_verdicts(tmp_path):
    rows = ledger_of(tmp_path, base_rows() + exp_rows("a", [2.40, 2.41, 2.39]) + exp_rows("b", [2.50, 2.52, 2.49]))
    once = verdicts.baseline_sample(rows)
    for slug in ("a", "b"):
        mine = [r for r in rows if r["slug"] == slug]
        assert verdicts.verdict(mine, slug, baseline=once) == verdicts.verdict(rows, slug)
