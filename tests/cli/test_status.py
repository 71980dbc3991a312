"""`lab status`, `lab next`, `lab digest` on constructed workspaces: counts, baseline, best, warnings, the cap.

Real temp git workspaces; rows written with lab.ledger, journal entries as text. ~10 s on a 2-core machine
(Python start-up of the CLI subprocesses); fast set.
Run: `just test tests/cli/test_status.py`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_env

from lab import ledger, runs
from lab.judge import verdicts
from lab.loop import ideas, status

ROW = {"run_id": "r", "time": "2026-11-23T09:00:00Z", "slug": "main", "branch": "main", "commit": "", "dirty": 0,
       "status": "ok", "reason": "", "val_bpb": 2.50, "wall_s": 10.0, "seed": 0, "budget_s": 300.0, "device": "cuda",
       "host": "h", "eval_sha": "aaaaaaaaaaaaaaaa", "data_sha": "bbbbbbbbbbbbbbbb"}


def lab(ws: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lab.cli", *args], cwd=ws, capture_output=True, text=True, env=run_env())


def add_rows(ws: Path, rows: list[dict]) -> None:
    with open(ws / "results.tsv", "a") as f:
        # rows of main's train.py: the baseline counts only those (a merge starts a new baseline)
        f.write("".join(ledger.format_row({**ROW, "train_sha": runs.main_train_sha(ws), **r}) for r in rows))


def test_empty_workspace_says_baseline_first(workspace):
    s = status.summarize(workspace)
    assert s.runs == 0 and s.baseline is None and s.best is None
    assert s.step == {"kind": "BASELINE", "say": "0 of 3 baseline seeds at 60 s so far; from the root checkout:",
                      "command": "just eval --seed 0"}
    assert lab(workspace, "next").stdout.startswith("BASELINE")
    assert json.loads(lab(workspace, "next", "--json").stdout)["command"] == "just eval --seed 0"


def test_the_baseline_budget_is_carried_into_the_next_command(workspace):
    add_rows(workspace, [{"run_id": "b9", "seed": 1, "budget_s": 60.0, "device": "cpu"},  # another budget: takes no seed
                         {"run_id": "b0", "seed": 0, "max_steps": 8, "budget_s": 60.0, "device": "cpu"}])
    s = status.summarize(workspace)
    assert s.step["command"] == "just eval --seed 1 --max-steps 8"
    assert "1 of 3 baseline seeds at 8 steps" in s.step["say"] and s.baseline["budget"] == "8 steps"


def test_baseline_best_and_next_steps(workspace):
    add_rows(workspace, [{"run_id": f"b{i}", "seed": i, "val_bpb": v} for i, v in enumerate([2.50, 2.52, 2.48])])
    add_rows(workspace, [{"run_id": "x1", "slug": "wider", "val_bpb": 2.40},
                         {"run_id": "x2", "slug": "other", "val_bpb": 2.30, "budget_s": 60.0},  # not comparable
                         {"run_id": "x3", "slug": "wider", "status": "crash", "reason": "boom", "val_bpb": ""}])
    add_rows(workspace, [{"run_id": "x4", "slug": "wider", "val_bpb": 2.41, "seed": 1},
                         {"run_id": "x5", "slug": "wider", "val_bpb": 2.39, "seed": 2}])
    s = status.summarize(workspace)
    assert s.baseline["n"] == 3 and abs(s.baseline["mean"] - 2.50) < 1e-9 and s.baseline["budget"] == "300 s"
    v = verdicts.verdict(ledger.read(workspace / "results.tsv")[0], "wider", train_sha=runs.main_train_sha(workspace))
    assert v.kind == "keep" and abs(v.diff + 0.10) < 1e-9
    # the effect size is the verdict's difference of means with its interval, never the best seed (2.39)
    assert s.best == {"slug": "wider", "diff": v.diff, "lo": v.lo, "hi": v.hi, "reason": v.reason}
    assert s.effects["wider"] == status.effect_text(v) and f"{v.diff:+.4f}" in s.effects["wider"]
    assert "other" in s.verdicts  # a slug without a worktree keeps its verdict
    assert s.next_step.startswith("NOTES")  # the rows are uncommitted notes on main
    subprocess.run(["git", "commit", "-qam", "rows"], cwd=workspace, check=True, env=run_env())
    assert status.summarize(workspace).next_step.startswith("IDEATE")
    ideas.new(workspace, "lower-lr", "Halve the learning rate")
    subprocess.run(["git", "add", "-A"], cwd=workspace, check=True)
    subprocess.run(["git", "commit", "-qm", "idea"], cwd=workspace, check=True, env=run_env())
    step = status.summarize(workspace).step
    assert step["kind"] == "CRITIQUE" and step["command"] == "lab idea critique lower-lr --from .cache/critiques/lower-lr.md"
    ideas.append_critique(workspace, "lower-lr", "Strongest objection: none.\nVerdict: run")
    ideas.rate(workspace, "lower-lr", 4)
    subprocess.run(["git", "commit", "-qam", "critique"], cwd=workspace, check=True, env=run_env())
    assert status.summarize(workspace, want_waiting=1).step["command"] == "lab start lower-lr"
    out = json.loads(lab(workspace, "status", "--json").stdout)
    assert out["runs"] == 8 and out["ideas"]["critiqued"] == 1 and out["best"]["slug"] == "wider"


def test_status_warns_about_torn_lines_pending_globals_and_drift(workspace):
    add_rows(workspace, [{"run_id": "b0"}])
    with open(workspace / "results.tsv", "a") as f:
        f.write("torn-fragment\tno newline")
    (workspace / "eval.py").write_text((workspace / "eval.py").read_text() + "\n# drift\n")
    warnings = status.summarize(workspace).warnings
    assert any("torn last line" in w for w in warnings)
    assert any("frozen file(s) changed without META_MODE: eval.py" in w for w in warnings)
    assert status.summarize(workspace).next_step.startswith("FIX: ")


@pytest.mark.parametrize("n", [10, 5000])
def test_digest_stays_under_4000_characters(workspace, n):
    add_rows(workspace, [{"run_id": f"b{i}", "seed": i % 3, "reason": "x" * 300 if i % 7 == 0 else "",
                          "status": "crash" if i % 7 == 0 else "ok", "val_bpb": "" if i % 7 == 0 else 2.5 + i / 1e5,
                          "slug": "main" if i % 2 else f"idea-{i % 40}"} for i in range(n)])
    journal = workspace / "RESEARCH_JOURNAL.md"
    head, _, rest = journal.read_text().partition("## 2026")
    entries = "".join(f"## 2026-11-23 {i // 60 % 24:02d}:{i % 60:02d} — entry {i} " + "t" * 150
                      + "\n**Observation:** o\n**Inference:** i\n\n"
                      for i in range(n))
    journal.write_text(head + entries + "## 2026" + rest)
    template = (workspace / "1_ideas" / "_TEMPLATE.md").read_text()
    for i in range(min(n, 60)):  # written directly: near-duplicate checks are not what this test is about
        (workspace / "1_ideas" / f"2026-11-23_idea-{i}.md").write_text(
            template.replace("status: proposed", f"status: {('proposed', 'critiqued')[i % 2]}")
            .replace("created:", "created: 2026-11-23 09:00", 1).replace("slug:", f"slug: idea-{i}", 1)
            .replace("title:", f"title: idea {i} " + "with a long title " * 10, 1))
    text = lab(workspace, "digest").stdout
    assert len(text) <= status.DIGEST_LIMIT
    assert text.startswith("UNPROTECTED: ") and "\n# Digest\n" in text and "Next: " in text and "Baseline: val_bpb" in text
    assert f"Runs: {n} in results.tsv" in text


def test_ledger_show_keeps_run_ids_whole_and_shows_the_step_budget(workspace):
    add_rows(workspace, [{"run_id": f"20261201-0{i}1500-ab{i}d", "seed": i, "max_steps": 8, "reason": "r" * 90}
                         for i in range(3)])
    out = lab(workspace, "ledger", "show", "-n", "3").stdout
    assert "max_steps" in out
    for i in range(3):
        line = next(line for line in out.splitlines() if f"20261201-0{i}1500-ab{i}d" in line)  # whole, on one line
        assert " 8 " in line


def test_with_the_queue_main_smokes_before_its_baseline_is_queued(workspace):
    """`lab baseline` refuses without main's smoke pass, so next says SMOKE first, FIX after a failed smoke, then BASELINE."""
    def step(smoke: dict | None) -> status.Step:
        facts = status.Facts(trees=[], flying=[], train_sha={}, unclean=lambda t: [], smoke=lambda t: None,
                             root_smoke=lambda: smoke, reported=set(), journaled=set(), root_notes=False, queue=True,
                             device="cpu", eval_sha="a" * 16, prepare_sha="b" * 16, main_sha=runs.main_train_sha(workspace))
        return status.next_step([], [], [], None, [], 30, facts, {})

    assert (step(None).kind, step(None).command) == ("SMOKE", "just smoke")
    failed = step({"status": "failed", "reason": "train.py ended with exit code 1: boom"})
    assert failed.kind == "FIX" and "boom" in failed.say and failed.command is None
    assert (step({"status": "ok"}).kind, step({"status": "ok"}).command) == ("BASELINE", "lab baseline --seeds 3")
