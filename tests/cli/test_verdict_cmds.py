"""`lab noise|verdict|calibration|plot|merge|baseline` and verdicts in status/digest/reports, on real workspaces.

Ledgers are constructed with lab.ledger (the numbers are chosen so the verdict is clear); the merge
runs real git on a temp repository. `lab baseline --foreground` trains for real (marked slow).

Cost on a 2-core machine: ~11 s for the 4 fast tests (CLI subprocesses, real git); the baseline's
smoke and training, ~2 min (slow). Run: `just test tests/cli/test_verdict_cmds.py`, or `just test-all …`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import git, path_without_pueue, run_env, tiny_train

from lab import ledger, runs

ROW = {"run_id": "r", "time": "2026-11-23T09:00:00Z", "slug": "main", "branch": "main", "commit": "", "dirty": 0,
       "status": "ok", "reason": "", "val_bpb": 2.50, "wall_s": 10.0, "seed": 0, "budget_s": 300.0, "device": "cuda",
       "host": "h", "eval_sha": "a" * 16, "prepare_sha": "c" * 16, "data_sha": "b" * 16}
BASE = [2.50, 2.52, 2.48]


def lab(ws: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lab.cli", *args], cwd=ws, capture_output=True, text=True,
                          env=run_env(**env), timeout=600)


def add_rows(ws: Path, slug: str, values: list[float], **extra) -> None:
    main_sha = runs.main_train_sha(ws)
    with open(ws / "results.tsv", "a") as f:
        for i, v in enumerate(values):
            train = main_sha if slug == "main" else "d" * 16
            f.write(ledger.format_row({**ROW, "run_id": f"{slug}-{i}", "slug": slug, "branch": "main" if slug == "main" else
                                       f"exp/{slug}", "seed": i, "val_bpb": v, "train_sha": train, **extra}))


def experiment_branch(ws: Path, slug: str, path: str = "train.py") -> None:
    git("switch", "-qc", f"exp/{slug}", cwd=ws)
    (ws / path).write_text((ws / path).read_text() + "\n# the change\n")
    git("commit", "-qm", f"{slug}: the change", "--", path, cwd=ws)  # not -a: results.tsv stays on main
    git("switch", "-q", "main", cwd=ws)


def test_noise_verdict_calibration_and_status_agree(workspace):
    add_rows(workspace, "main", BASE)
    add_rows(workspace, "wider", [2.40, 2.41, 2.39], label="Q: wider? H: expect -0.08 ± 0.03 val_bpb", predicted_delta=-0.08)
    add_rows(workspace, "wider", [2.30], budget_s=60.0)  # another budget: excluded and counted

    noise = json.loads(lab(workspace, "noise", "--json").stdout)
    assert noise["n"] == 3 and abs(noise["mean"] - 2.50) < 1e-9 and abs(noise["std"] - 0.02) < 1e-9 and noise["mde"] > 0

    v = json.loads(lab(workspace, "verdict", "wider", "--json").stdout)
    assert v["kind"] == "keep" and abs(v["diff"] + 0.10) < 1e-9 and v["n_exp"] == 3 and v["lo"] < -0.10 < v["hi"]
    assert v["excluded"] == {"other hashes/budget/device": 1}
    assert lab(workspace, "verdict", "wider").stdout.startswith("wider: keep: diff -0.1000")

    c = json.loads(lab(workspace, "calibration", "--json").stdout)
    wider = c["slugs"]["wider"]
    # observed = mean(2.40, 2.41, 2.39) - mean(2.50, 2.52, 2.48) = 2.40 - 2.50 = -0.10; |−0.10 − (−0.08)| = 0.02
    assert abs(wider["observed"] + 0.10) < 1e-9 and abs(wider["abs_error"] - 0.02) < 1e-9
    assert wider["sign_agrees"] is True and wider["inside"] is True  # -0.10 within -0.08 ± 0.03
    table = lab(workspace, "calibration").stdout.splitlines()  # one aligned table, then the overall line
    assert table[0].split() == ["slug", "predicted", "observed", "sign", "inside"]
    assert table[1].split() == ["wider", "-0.0800", "-0.1000", "yes", "yes"]
    assert table[0].index("predicted") + len("predicted") == table[1].index("-0.0800") + len("-0.0800")  # numbers right
    assert table[2].startswith("overall: 1 scored, sign agreement 100%")

    ideas_line = lab(workspace, "status")
    # a slug without a worktree (finished) keeps its verdict, with the verdict's effect size
    assert "verdict wider: keep -0.1000 val_bpb (95% CI" in ideas_line.stdout
    assert "best: wider keep -0.1000 val_bpb (95% CI" in ideas_line.stdout
    assert "baseline: val_bpb 2.5000 ± 0.0200 (n=3" in ideas_line.stdout


def test_verdict_without_a_baseline_says_run_just_baseline(workspace):
    add_rows(workspace, "wider", [2.40, 2.41, 2.39])
    for args in (["verdict", "wider"], ["noise"]):
        proc = lab(workspace, *args)
        assert proc.returncode == 1 and "just baseline" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_plot_writes_a_png_that_grows_with_runs(workspace):
    add_rows(workspace, "main", BASE)
    assert lab(workspace, "plot").returncode == 0
    small = (workspace / "9_reports" / "progress.png").read_bytes()
    add_rows(workspace, "wider", [2.40 + i / 1000 for i in range(60)])
    assert lab(workspace, "plot", "--out", "9_reports/p2.png").returncode == 0
    big = (workspace / "9_reports" / "p2.png").read_bytes()
    assert small[:8] == big[:8] == b"\x89PNG\r\n\x1a\n" and len(big) > len(small)


def test_merge_needs_meta_mode_a_keep_and_clean_history_then_carries_the_evidence(workspace):
    add_rows(workspace, "main", BASE)
    add_rows(workspace, "wider", [2.40, 2.41, 2.39])
    add_rows(workspace, "noisy", [2.49, 2.52, 2.51])
    experiment_branch(workspace, "wider")
    experiment_branch(workspace, "noisy")
    experiment_branch(workspace, "cheat", "eval.py")
    add_rows(workspace, "cheat", [2.30, 2.31, 2.29])
    head = git("rev-parse", "main", cwd=workspace).strip()

    refused = lab(workspace, "merge", "wider")
    assert refused.returncode == 1 and "human's call" in refused.stderr
    assert "META_MODE=1" not in refused.stderr and "human_journal" not in refused.stderr  # no invitation to unlock
    inconclusive = lab(workspace, "merge", "noisy", META_MODE="1")
    assert inconclusive.returncode == 1 and "only a keep merges" in inconclusive.stderr
    tampered = lab(workspace, "merge", "cheat", META_MODE="1")
    assert tampered.returncode == 1 and "lab check" in tampered.stderr and "eval.py" in tampered.stderr
    assert git("rev-parse", "main", cwd=workspace).strip() == head  # every refusal left main alone

    merged = lab(workspace, "merge", "wider", META_MODE="1")
    assert merged.returncode == 0, merged.stderr
    message = git("log", "-1", "--format=%B", "main", cwd=workspace)
    assert message.startswith("merge exp/wider: keep, val_bpb -0.1000") and "wider-0 wider-1 wider-2" in message
    tags = git("tag", "--list", "baseline/*", cwd=workspace).split()
    assert len(tags) == 1 and tags[0].endswith("-wider")
    assert "lab baseline --seeds 3" in merged.stdout
    # main's train.py changed: the old baseline rows no longer count
    assert "just baseline" in lab(workspace, "verdict", "noisy").stderr


@pytest.mark.slow
def test_baseline_without_pueue_runs_in_the_foreground(workspace, corpus, tmp_path):
    tiny_train(workspace)
    git("commit", "-qam", "tiny", cwd=workspace)
    smoke = subprocess.run(["just", "smoke", "--source", str(corpus), "--budget-s", "1"], cwd=workspace, env=run_env(),
                           capture_output=True, text=True, timeout=600)
    assert smoke.returncode == 0, smoke.stderr[-2000:]
    proc = subprocess.run([sys.executable, "-m", "lab.cli", "baseline", "--seeds", "1", "--", "--source", str(corpus),
                           "--max-steps", "2"], cwd=workspace, env=run_env(PATH=path_without_pueue(tmp_path)), capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "no queue" in proc.stderr and "running in the foreground" in proc.stderr
    rows = ledger.read(workspace / "results.tsv")[0]
    assert len(rows) == 1 and rows[0]["slug"] == "main" and rows[0]["seed"] == "0"
    assert rows[0]["label"].startswith("Q: what is the noise floor")
