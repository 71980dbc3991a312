"""The whole research loop in protected mode, as a real unprivileged agent user, with zero false alarms.

Root only (skipped with one reason otherwise; a failure under CI=1). Protection on (tests/protected.py), then
baseline seeds, idea → critique → rate, a worktree, smoke, eval in the worktree (through the grader), verdict,
report, journal, status and digest. Every row is signed and verified, `lab ledger check` (the repository's and
the installed copy) passes, and nothing warns. Cost: ~3 min on 2 CPU cores (3 tiny CPU evals, one smoke).
Marked slow. Run: `sudo .venv/bin/python -m pytest tests/e2e/test_protect_loop.py`.
"""

from __future__ import annotations

import os
import shlex

import pytest
from protected import Protected, require_root

from lab import ledger
from lab.grader import protect

pytestmark = pytest.mark.slow


def test_the_whole_loop_in_protected_mode_raises_no_false_alarm(corpus):
    require_root()
    P = Protected(corpus)
    try:
        P.up()
        run = lambda *args, cwd=None, stdin=None: ok(P.as_agent(*args, cwd=cwd) if stdin is None else
                                                    P.sh(f"{shlex.join(args)} <<'EOF'\n{stdin}EOF\n", cwd=cwd))
        for seed in (0, 1):
            run("just", "eval", "--max-steps", "2", "--seed", str(seed))
        critic = P.base / "critic.sh"
        critic.write_text("#!/bin/sh\ncat > /dev/null\necho 'Strongest objection: seed noise.'\necho 'Verdict: run'\n")
        os.chmod(critic, 0o755)
        run("just", "idea", "new", "lower-lr", "--title", "Halve the learning rate")
        run("just", "idea", "critique", "lower-lr", "--with", str(critic))
        run("just", "idea", "rate", "lower-lr", "4")
        run("git", "add", "1_ideas")
        run("git", "commit", "-qm", "idea: lower-lr")
        run("just", "start", "lower-lr")
        tree = P.ws / "5_worktrees" / "lower-lr"
        tiny_train_as_agent(P, tree)
        run("git", "commit", "-qam", "lower-lr: halve the learning rate", cwd=tree)
        run("just", "smoke", "--source", str(P.corpus), "--budget-s", "1", cwd=tree)
        out = run("just", "eval", "--max-steps", "2", cwd=tree).stdout
        run_id = next(line.split()[1] for line in out.splitlines() if line.startswith("run_id:"))
        assert "mode:        PROTECTED" in out
        verdict = run("just", "verdict", "lower-lr", cwd=tree)
        body = f"**Observation:** run {run_id} finished ok.\n**Inference:** one seed, too early to say.\n"
        run("just", "journal", "add", "lower-lr first run", cwd=tree, stdin=body)
        report = run("just", "report", "lower-lr", cwd=tree)
        status, digest = run("just", "status"), run("just", "digest")
        checks = [run(".venv/bin/python", "-m", "lab.cli", "ledger", "check"), run(f"{P.cfg.install}/bin/lab", "ledger", "check")]

        rows, problems = ledger.read(P.ws / "results.tsv")
        assert problems == [] and len(rows) == 3 and all(r["signature"] and r["status"] == "ok" for r in rows)
        assert protect.verified(P.ws, rows) == (rows, None)
        assert status.stdout.startswith("PROTECTED: ") and digest.stdout.startswith("PROTECTED: ")
        for proc in (verdict, report, status, digest, *checks):
            assert "warning" not in (proc.stdout + proc.stderr).lower(), proc.stdout + proc.stderr
            assert "left out" not in proc.stdout + proc.stderr
        assert "0 problem(s)" in checks[1].stdout
    finally:
        P.teardown()


def ok(proc):
    assert proc.returncode == 0, f"{proc.args}: {proc.stdout[-1500:]} {proc.stderr[-2500:]}"
    return proc


def tiny_train_as_agent(P: Protected, tree) -> None:
    """The experiment's edit (the worktree's train.py is the tiny one already; halve its learning rate)."""
    text = (tree / "train.py").read_text()
    assert "lr=2e-3, warmup_steps=30" in text
    (tree / "train.py").write_text(text.replace("lr=2e-3, warmup_steps=30", "lr=1e-3, warmup_steps=30"))
    P.chown()
