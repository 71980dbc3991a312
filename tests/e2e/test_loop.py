"""The research loop end to end through the front door (`just …`), on a temp clone with a tiny budget.

idea → critique (a real --with script) → rate → start → edit train.py → commit → smoke → eval in the
worktree (the row lands in the root ledger) → journal → report → finish → status/next/digest.
Cost: ~2 min on a 2-core machine (two small CPU trainings); marked slow. Run: `just test-all tests/e2e/test_loop.py`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import git, run_env, tiny_train

from lab import ledger
from lab.loop import ideas

pytestmark = pytest.mark.slow


def just(cwd: Path, *args: str, stdin: str | None = None, ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["just", *args], cwd=cwd, env=run_env(), capture_output=True, text=True, input=stdin, timeout=300)
    if ok:
        assert proc.returncode == 0, f"just {' '.join(args)}: {proc.stderr[-3000:]}"
    return proc


def test_the_whole_loop(workspace, corpus, tmp_path):
    critic = tmp_path / "critic.sh"
    critic.write_text("#!/bin/sh\ncat > /dev/null\necho 'Strongest objection: seed noise may hide the effect.'\necho 'Verdict: run'\n")
    critic.chmod(0o755)

    just(workspace, "idea", "new", "lower-lr", "--title", "Halve the learning rate")
    just(workspace, "idea", "critique", "lower-lr", "--with", str(critic))
    just(workspace, "idea", "rate", "lower-lr", "4")
    assert ideas.find(workspace, "lower-lr").status == "critiqued"
    git("add", "1_ideas", cwd=workspace)
    git("commit", "-qm", "idea: lower-lr", cwd=workspace)

    just(workspace, "start", "lower-lr")
    tree = workspace / "5_worktrees" / "lower-lr"
    assert git("branch", "--show-current", cwd=tree).strip() == "exp/lower-lr"
    assert ideas.find(workspace, "lower-lr").status == "running"
    tiny_train(tree, ("lr=2e-3, warmup_steps=30", "lr=1e-3, warmup_steps=30"))
    git("commit", "-qam", "lower-lr: halve the learning rate", cwd=tree)

    just(tree, "smoke", "--source", str(corpus), "--budget-s", "1")
    before = (workspace / "results.tsv").read_bytes()
    out = just(tree, "eval", "--source", str(corpus), "--max-steps", "2").stdout
    run_id = next(line.split()[1] for line in out.splitlines() if line.startswith("run_id:"))
    rows = ledger.read(workspace / "results.tsv")[0]
    assert (workspace / "results.tsv").read_bytes().startswith(before)
    assert (rows[-1]["run_id"], rows[-1]["slug"], rows[-1]["status"], rows[-1]["dirty"]) == (run_id, "lower-lr", "ok", "0")

    body = f"**Observation:** run {run_id} finished ok.\n**Inference:** too early to say.\n"
    just(tree, "journal", "add", "lower-lr first run", stdin=body)
    journal = (workspace / "RESEARCH_JOURNAL.md").read_text()
    assert "— lower-lr first run" in journal and run_id in journal
    assert "lower-lr first run" not in (tree / "RESEARCH_JOURNAL.md").read_text()

    just(tree, "report", "lower-lr")
    reports = list((workspace / "9_reports").glob("*_lower-lr.md"))
    assert len(reports) == 1 and run_id in reports[0].read_text()

    just(workspace, "finish", "lower-lr")
    assert not tree.exists()
    assert "exp/lower-lr" in git("branch", "--list", "exp/lower-lr", cwd=workspace)
    assert ideas.find(workspace, "lower-lr").status in ("done", "reported")

    status = just(workspace, "status").stdout
    assert "runs: 1" in status and "next: BASELINE" in status
    assert just(workspace, "next").stdout.startswith("BASELINE")
    assert len(just(workspace, "digest").stdout) <= 4000
