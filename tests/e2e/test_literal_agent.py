"""The loop walked by a literal agent: `tests/stand_in_agent.py` runs exactly what `lab next` prints, each time.

One whole iteration on a temp workspace, the default corpus (this Python's standard library) and a
step budget given once, at the first baseline run: baseline seeds, idea, critique from a file,
start, edit, commit, smoke, three seeds, verdict, report, journal, finish, and `lab next` moving on.
It must never loop, never leave a dirty checkout, never mix budgets, and every screen (report,
status, digest, plot, verdict) must show the one effect size. Cost: ~3-4 min on 2 cores (7 tiny
CPU trainings, one smoke, one data cache build). Run: `just test-all tests/e2e/test_literal_agent.py`.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import git, run_env, tiny_train

from lab import ledger, runs
from lab.judge import verdicts

pytestmark = pytest.mark.slow
AGENT = Path(__file__).parents[1] / "stand_in_agent.py"


def lab(ws: Path, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "lab.cli", *args], cwd=ws, env=run_env(), capture_output=True, text=True)
    assert proc.returncode == 0, f"lab {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def test_a_literal_agent_walks_one_whole_iteration_and_moves_on(workspace, tmp_path):
    tiny_train(workspace)  # the human's set-up: a tiny baseline, one critiqued idea waiting is enough
    pyproject = workspace / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("ideas_waiting = 30", "ideas_waiting = 1"))
    git("commit", "-qam", "tiny baseline, one idea waiting", cwd=workspace)

    # `lab` on PATH is this workspace's (a user's root .venv has it; here the shared .venv's points elsewhere)
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "lab").write_text(f"#!/bin/sh\nexec {sys.executable} -m lab.cli \"$@\"\n")
    (shim / "lab").chmod(0o755)
    env = run_env()
    env["PATH"] = f"{shim}:{env['PATH']}"
    proc = subprocess.run([sys.executable, str(AGENT), str(workspace), "--until", "IDEATE", "--first-args", "--max-steps 8"],
                          cwd=workspace, env=env, capture_output=True, text=True, timeout=1500)
    steps = [json.loads(line) for line in proc.stdout.splitlines()]
    assert proc.returncode == 0, f"{proc.stderr[-3000:]}\nsteps: {steps}"

    kinds = [s["kind"] for s in steps]
    walked = [k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k]
    assert [k for k in walked if k != "NOTES"] == ["BASELINE", "IDEATE", "CRITIQUE", "IMPLEMENT", "EDIT", "SMOKE", "RUN",
                                                   "REPORT", "JOURNAL", "FINISH", "IDEATE"], kinds
    assert steps[-1].get("stopped") and len(steps) < 30
    ran = [s["ran"] for s in steps if s["ran"]]
    assert all(a != b for a, b in itertools.pairwise(ran)), f"a command ran twice in a row: {ran}"  # never loops
    assert ran[0] == "just eval --seed 0 --max-steps 8"  # the budget, given once
    assert ran[1:3] == ["just eval --seed 1 --max-steps 8", "just eval --seed 2 --max-steps 8"]  # ... then carried
    assert [r for r in ran if "5_worktrees" in r and "eval" in r] == [
        f"cd 5_worktrees/warmup-1 && just eval --seed {s} --max-steps 8" for s in range(3)]

    rows, problems = ledger.read(workspace / "results.tsv")
    assert problems == [] and len(rows) == 6 and all(r["status"] == "ok" for r in rows)
    assert {r["max_steps"] for r in rows} == {"8"} and len({verdicts.key(r) for r in rows}) == 1  # never mixed
    assert sorted((r["slug"], r["seed"]) for r in rows) == sorted((s, str(i)) for s in ("main", "warmup-1") for i in range(3))
    # no dirty checkout: everything the loop wrote is committed, generated files are ignored
    assert git("status", "--porcelain", cwd=workspace) == ""
    assert not (workspace / "5_worktrees" / "warmup-1").exists()

    v = verdicts.verdict(rows, "warmup-1", train_sha=runs.main_train_sha(workspace))
    assert v.kind in ("keep", "discard") and v.n_exp == 3 and v.n_base == 3
    effect = f"{v.diff:+.4f} val_bpb (95% CI {v.lo:+.4f} to {v.hi:+.4f})"
    report = next((workspace / "9_reports").glob("*_warmup-1.md")).read_text()
    assert f"— verdict: {v.kind}" in report and effect in report
    assert f"verdict warmup-1: {v.kind} {effect}" in lab(workspace, "status")
    assert effect in lab(workspace, "digest")
    assert json.loads(lab(workspace, "verdict", "warmup-1", "--json"))["diff"] == v.diff
    if v.kind == "keep":
        assert f"keep {effect}" in lab(workspace, "plot") and "warmup-1" in lab(workspace, "status").split("proposed merges")[1]
    journal = (workspace / "RESEARCH_JOURNAL.md").read_text()
    assert f"— warmup-1: {v.kind} {v.diff:+.4f} val_bpb" in journal and all(i in journal for i in v.run_ids)
    assert json.loads(lab(workspace, "next", "--json"))["kind"] == "IDEATE"  # moving on
    assert git("status", "--porcelain", cwd=workspace) == ""  # lab plot's PNG is ignored
