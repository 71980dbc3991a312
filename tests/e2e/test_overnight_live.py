"""A short real night: `lab overnight` drives tests/stand_in_agent.py (a scripted stand-in for a model) with a live pueue.

A temp workspace with train.py's tiny variant, a private pueued with two slots, `ideas_waiting = 0` and a
step budget of 8 (the stand-in puts it on the first queued runs, as a human gives it once). The night:
the stand-in crashes once and is restarted; it queues the baseline's 3 seeds and ends its turn at WAIT;
the driver waits on the queue with no agent; the stand-in writes an idea, critiques it, starts its
worktree, edits, smokes, queues 3 seeds; the driver waits again; the stand-in writes the verdict's report
and journal entry and finishes. Then the human's STOP ends the night within one cycle, and the summary's
counts are the ledger's. Cost: ~6-8 min on 2 shared cores (6 tiny trainings, one smoke, one data cache).
Skips without pueue, except under CI (as tests/cli/test_queue_live.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from conftest import git, tiny_train
from test_overnight import LAB, human_entry, night
from test_queue_live import HAVE_PUEUE, INSTALL, daemon  # noqa: F401  (the fixture)

from lab import journal_format, ledger, runs
from lab.judge import verdicts
from lab.loop import status, window

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not HAVE_PUEUE, reason=f"pueue/pueued not on PATH ({INSTALL})")]
AGENT = Path(__file__).parents[1] / "stand_in_agent.py"


def test_a_short_real_night(workspace, daemon, tmp_path):  # noqa: F811
    tiny_train(workspace)
    pyproject = workspace / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("ideas_waiting = 30", "ideas_waiting = 0"))
    git("commit", "-qam", "tiny baseline, no ideas kept waiting", cwd=workspace)
    shim = tmp_path / "bin"  # `lab` on PATH is this workspace's, as in a user's activated .venv
    shim.mkdir()
    (shim / "lab").write_text(f"#!/bin/sh\nexec {sys.executable} -m lab.cli \"$@\"\n")
    (shim / "lab").chmod(0o755)
    env = {**daemon.env, "PATH": f"{shim}:{daemon.env['PATH']}"}
    setup = subprocess.run([*LAB, "setup", "--slots", "2"], cwd=workspace, env=env, capture_output=True, text=True)
    assert setup.returncode == 0, setup.stderr

    agent = f"{AGENT} . --session --steps 20 --budget '--max-steps 8' --crash-once .cache/stand-in-crashed"
    started = time.monotonic()
    proc = subprocess.Popen([*LAB, "overnight", "--agent", agent, "--hours", "0.5", "--poll-s", "5", "--backoff-s", "1",
                             "--stuck", "8"], cwd=workspace, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        while not (list((workspace / "9_reports").glob("*_warmup-1.md"))
                   and not (workspace / "5_worktrees" / "warmup-1").exists()):
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() - started < 900, "the night did not reach FINISH within 15 min"
            time.sleep(0.5)
        human_entry(workspace, "STOP: seen enough")
        written = datetime.now().replace(microsecond=0)
        out, _ = proc.communicate(timeout=300)
    finally:
        proc.kill()
    print(out)
    assert proc.returncode == 0, out
    n = night(workspace)
    cycles = n["cycles"]
    assert n["stopped"].startswith("human: STOP in the human_journal.md entry") and "seen enough" in n["stopped"]
    assert len([c for c in cycles if datetime.fromisoformat(c["start"]) > written]) <= 1  # within one cycle

    agents = [c for c in cycles if c["kind"] == "agent"]
    assert (agents[0]["outcome"], agents[0]["exit"]) == ("crash", 3) and agents[1]["outcome"] == "ok"  # restarted
    # main smokes first (the queue's gate), then the same session queues the baseline: queuing runs is progress
    assert agents[1]["step"] == "SMOKE" and "3 queued" in agents[1]["progress"]
    waits = [c for c in cycles if c["kind"] == "wait"]
    assert waits and all(c["agent"] is None and c["ran"] == "lab wait" and c["step"] == "WAIT" for c in waits)
    base = workspace / window.DIR / n["id"]
    for c in cycles:  # the cycle log: an agent cycle has its prompt and output; a wait or chore none (no agent)
        assert (base / f"cycle-{c['n']:03d}" / "prompt.txt").exists() == (c["kind"] == "agent")
    kinds = [c["kind"] for c in cycles]
    first_wait, last_agent = kinds.index("wait"), len(kinds) - 1 - kinds[::-1].index("agent")
    assert first_wait < last_agent  # waits sit between agent cycles: the driver handed the queue back to the agent

    rows, problems = ledger.read(workspace / "results.tsv")
    assert problems == [] and len(rows) == 6 and all(r["status"] == "ok" for r in rows)
    assert sorted((r["slug"], r["seed"]) for r in rows) == sorted((s, str(i)) for s in ("main", "warmup-1") for i in range(3))
    assert {r["max_steps"] for r in rows} == {"8"} and all(r["pueue_task"] for r in rows)
    added = [rid for c in cycles for rid in c["rows_added"]]
    assert sorted(added) == sorted(r["run_id"] for r in rows)  # every row in the cycle that saw it land
    assert list((workspace / "1_ideas").glob("*_warmup-1.md"))
    assert "exp/warmup-1" in git("branch", "--list", "exp/*", cwd=workspace)  # its worktree came and went
    v = verdicts.verdict(rows, "warmup-1", train_sha=runs.main_train_sha(workspace))
    assert v.kind in ("keep", "discard", "inconclusive") and v.n_exp == 3
    entries = [e.heading for e in journal_format.parse((workspace / "RESEARCH_JOURNAL.md").read_bytes())[1]]
    assert any(f"— warmup-1: {v.kind}" in h for h in entries) and f"overnight {n['id']}: stopped (human)" in entries[0]

    summary = (workspace / n["summary"]).read_text()
    print(summary)
    outcomes = {o: sum(c["outcome"] == o for c in agents) for o in ("ok", "crash")}
    assert f"**Cycles:** {len(agents)} agent ({outcomes['ok']} ok, {outcomes['crash']} crash)" in summary \
        or f"**Cycles:** {len(agents)} agent ({outcomes['crash']} crash, {outcomes['ok']} ok)" in summary
    chores = [c for c in cycles if c["kind"] == "chore"]
    assert chores and all(c["step"] == "NOTES" and c["outcome"] == "ok" for c in chores)  # ledger commits, no agent
    assert not any(c["step"] == "NOTES" for c in agents)
    assert f"{len(waits)} waits on the queue with no agent running" in summary
    assert f"{len(chores)} notes commits by the driver" in summary
    assert "**Runs tonight:** 6 (6 ok); results.tsv rows 1-6" in summary
    assert f"- warmup-1: {status.effect_text(v)}" in summary and n["stopped"] in summary
    assert "agent crash, exit 3" in summary and "## Still queued\n\n- nothing" in summary
    assert (workspace / "9_reports" / "progress.png").stat().st_size > 0
    assert json.loads(subprocess.run([*LAB, "next", "--json"], cwd=workspace, env=env, capture_output=True,
                                     text=True).stdout)["kind"] in ("IDEATE", "NOTES")
