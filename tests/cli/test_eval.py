"""The eval contract end to end: real train.py subprocesses on CPU, real exports, real ledger rows.

Each test runs eval.py in a throwaway git checkout (see conftest.py) on a tiny synthetic corpus,
with train.py shrunk to a 1-layer model and committed (a real eval trains the commit, in the bwrap
sandbox; tests/e2e/test_tamper.py attacks it), so a run costs ~10-40 s on 2 cores. The tests that train
are marked slow: whole file ~7 min on a loaded 2-core box (`just test-all tests/cli/test_eval.py`). Eight
train nothing and are in the fast set (~60 s: a missing source, a bad run id, the 12 s hard limit, the
queue's kill, the smoke key, the experiment gate, a foreground eval killed from outside, what importing
eval.py loads).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import git, run_env, tiny_train

from lab import jobs, ledger
from lab.loop import status

EARLIER_ROW = {"run_id": "earlier-1", "time": "2026-11-01T00:00:00Z", "slug": "main", "branch": "main", "commit": "",
               "dirty": 0, "status": "ok", "reason": "", "val_bpb": 2.5, "wall_s": 1.0, "seed": 0, "budget_s": 60.0,
               "device": "cpu", "host": "elsewhere"}


def run_eval(ws: Path, corpus: Path, *args: str, timeout: float = 240, **env: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ws / "eval.py"), "--source", str(corpus), *args]
    return subprocess.run(cmd, cwd=ws, env=run_env(**env), capture_output=True, text=True, timeout=timeout,
                          start_new_session=True)


def summary(stdout: str) -> dict[str, str]:
    block = stdout.rsplit("\n---\n", 1)[-1] if "\n---\n" in stdout else stdout.split("---\n", 1)[-1]
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in block.splitlines() if ":" in line)}


def new_rows(ws: Path, before: bytes) -> list[dict[str, str]]:
    """Rows added after `before`, after checking that `before` is still a byte-identical prefix."""
    data = (ws / "results.tsv").read_bytes()
    assert data.startswith(before), "earlier ledger bytes changed"
    rows, problems = ledger.read(ws / "results.tsv")
    assert problems == []
    return rows[len(ledger.read(ws / "results.tsv")[0]) - (data.count(b"\n") - before.count(b"\n")):]


def seeded_ledger(ws: Path) -> bytes:
    ledger.append(EARLIER_ROW, ws / "results.tsv")
    return (ws / "results.tsv").read_bytes()


def test_importing_eval_loads_neither_torch_nor_the_guard():
    """The protected client only hands the run to the installed grader: torch and lab.guard load where they are used."""
    code = ("import sys; import eval; heavy = sorted(m for m in sys.modules if m.split('.')[0] == 'torch' "
            "or m.startswith('lab.guard')); assert not heavy, heavy")
    proc = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.slow
def test_eval_appends_one_valid_row_and_step_budget_is_deterministic(workspace, corpus):
    tiny_train(workspace)
    git("commit", "-qam", "tiny", cwd=workspace)
    before = seeded_ledger(workspace)
    first = run_eval(workspace, corpus, "--max-steps", "5", "--seed", "1")
    assert first.returncode == 0, first.stderr[-2000:]
    second = run_eval(workspace, corpus, "--max-steps", "5", "--seed", "1")
    other = run_eval(workspace, corpus, "--max-steps", "5", "--seed", "2")
    assert second.returncode == 0 and other.returncode == 0
    rows = new_rows(workspace, before)
    assert [r["status"] for r in rows] == ["ok", "ok", "ok"]
    assert rows[0]["val_bpb"] == rows[1]["val_bpb"], "same seed and step budget must give the same metric"
    assert rows[2]["val_bpb"] != rows[0]["val_bpb"], "a different seed must change the metric"
    assert summary(first.stdout)["val_bpb"] == rows[0]["val_bpb"]
    assert summary(first.stdout)["run_id"] == rows[0]["run_id"]
    row = rows[0]
    assert (row["slug"], row["branch"], row["dirty"], row["seed"], row["max_steps"]) == ("main", "main", "0", "1", "5")
    assert row["commit"] == git("rev-parse", "HEAD", cwd=workspace).strip()
    assert row["eval_sha"] == hashlib.sha256((workspace / "eval.py").read_bytes()).hexdigest()[:16]
    assert row["train_sha"] == hashlib.sha256((workspace / "train.py").read_bytes()).hexdigest()[:16]
    assert row["data_sha"] and row["prepare_sha"] and int(row["params"]) > 0 and row["steps"] == "5"
    assert 1.0 < float(row["val_bpb"]) < 9.0
    assert row["sandbox"].startswith("bwrap ") and float(row["train_s"]) <= float(row["train_wall_s"]) <= float(row["wall_s"])
    assert row["config"] == "cpu: 1L 32d 2h, 4x512 tokens/step, fp32"  # the preset train.py chose, from train_info.json
    # where the wall time went (bench/gpu.py): eval's marks and train.py's, one clock, in order
    phases = json.loads((workspace / ".cache" / "runs" / row["run_id"] / "phases.json").read_text())
    t = phases["train"]
    marks = [phases[k] for k in ("process", "main", "evaluate", "data", "tree", "spawn")] + \
            [t[k] for k in ("started", "data", "model", "untimed", "trained", "exported")] + [phases[k] for k in ("exit", "graded", "row")]
    assert marks == sorted(marks) and phases["row"] - phases["main"] == pytest.approx(float(row["wall_s"]), abs=1.5)


@pytest.mark.slow
def test_smoke_via_just_checks_everything_and_writes_no_row(workspace, corpus):
    before = (workspace / "results.tsv").read_bytes()
    proc = subprocess.run(["just", "smoke", "--source", str(corpus), "--budget-s", "2"], cwd=workspace,
                          env=run_env(), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    block = summary(proc.stdout)
    assert block["status"] == "ok" and float(block["val_bpb"]) > 0
    assert block["ledger"].startswith("not written (smoke)") and block["mode"].startswith("UNPROTECTED")
    assert (workspace / "results.tsv").read_bytes() == before
    # a clean tree's pass is recorded for its content (code, not notes): the queue's and eval's gates read it
    head = git("rev-parse", "HEAD", cwd=workspace).strip()
    record = json.loads((workspace / ".cache" / "smoke" / f"{jobs.content_key(workspace)}.json").read_text())
    assert (record["commit"], record["status"]) == (head, "ok") and "smoke pass recorded" in block["ledger"]

    (workspace / "run.log").write_text("a log the agent redirected into the checkout\n")
    again = subprocess.run(["just", "smoke", "--source", str(corpus), "--budget-s", "1"], cwd=workspace,
                           env=run_env(), capture_output=True, text=True, timeout=240)
    assert again.returncode == 0 and "no smoke result recorded: uncommitted paths (run.log)" in summary(again.stdout)["ledger"]


def test_a_smoke_pass_survives_notes_and_journal_commits_but_not_a_code_change(workspace):
    key = jobs.content_key(workspace)
    (workspace / "RESEARCH_JOURNAL.md").write_text((workspace / "RESEARCH_JOURNAL.md").read_text() + "\n")
    (workspace / "1_ideas" / "2026-12-01_x.md").write_text("an idea\n")
    git("add", "-A", cwd=workspace)
    git("commit", "-qm", "notes", cwd=workspace)
    assert jobs.content_key(workspace) == key
    (workspace / "train.py").write_text((workspace / "train.py").read_text() + "\n# a change\n")
    git("commit", "-qam", "code", cwd=workspace)
    assert jobs.content_key(workspace) != key


def test_a_real_eval_of_an_experiment_needs_a_commit_and_a_smoke_pass(workspace, corpus):
    git("worktree", "add", "-q", "5_worktrees/x", "-b", "exp/x", "main", cwd=workspace)
    tree = workspace / "5_worktrees" / "x"
    before = (workspace / "results.tsv").read_bytes()
    (tree / "train.py").write_text((tree / "train.py").read_text() + "\n# uncommitted\n")
    dirty = subprocess.run(["just", "eval", "--source", str(corpus)], cwd=tree, env=run_env(), capture_output=True,
                           text=True, timeout=120)
    assert dirty.returncode == 2 and "uncommitted paths (train.py): commit your train.py change first" in dirty.stderr
    git("commit", "-qam", "x: a change", cwd=tree)
    unsmoked = subprocess.run(["just", "eval", "--source", str(corpus)], cwd=tree, env=run_env(), capture_output=True,
                              text=True, timeout=120)
    assert unsmoked.returncode == 2 and "run `cd 5_worktrees/x && just smoke` first" in unsmoked.stderr
    assert (workspace / "results.tsv").read_bytes() == before  # refused before training: no row, nothing trained


@pytest.mark.slow
def test_smoke_runs_jaxtyping_shape_checks(workspace, corpus):
    tiny_train(workspace, ('-> Float[Tensor, "b t 256"]:', '-> Float[Tensor, "b t 7"]:'))
    proc = subprocess.run(["just", "smoke", "--source", str(corpus), "--budget-s", "1"], cwd=workspace,
                          env=run_env(), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 1
    assert summary(proc.stdout)["status"] == "crash"
    assert "TypeCheckError" in proc.stdout


BAD_TRAINS = {
    "crash": ([("def train(cfg: Config) -> None:\n", "def train(cfg: Config) -> None:\n    raise RuntimeError('boom from train.py')\n")],
              "crash", "boom from train.py"),
    "nan": ([("        loss.backward()", "        loss = loss * float('nan')\n        loss.backward()")], "crash", "loss is nan"),
    "no_artifact": ([('torch.export.save(program, cfg.out_dir / "model.pt2")', "pass")], "invalid", "wrote no model.pt2"),
    "peeks_at_future": ([("is_causal=True", "is_causal=False")], "invalid", "causality probe failed"),
    "wrong_shape": ([("self.head = nn.Linear(cfg.d_model, 256", "self.head = nn.Linear(cfg.d_model, 255"),
                     ('-> Float[Tensor, "b t 256"]:', '-> Float[Tensor, "b t 255"]:')], "invalid", "expected logits of shape"),
    "random_output": ([("return self.head(self.ln_f(x))", "return self.head(self.ln_f(x)) + torch.rand(1, device=idx.device)")],
                      "invalid", "not deterministic"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", BAD_TRAINS)
def test_bad_train_gets_one_row_with_the_right_status(workspace, corpus, name):
    edits, status, reason = BAD_TRAINS[name]
    tiny_train(workspace, *edits)
    git("commit", "-qam", name, cwd=workspace)
    before = seeded_ledger(workspace)
    proc = run_eval(workspace, corpus, "--max-steps", "3")
    assert proc.returncode == 1, proc.stderr[-2000:]
    rows = new_rows(workspace, before)
    assert len(rows) == 1
    assert rows[0]["status"] == status
    assert reason in rows[0]["reason"]
    assert summary(proc.stdout)["status"] == status
    assert rows[0]["dirty"] == "0"


def test_uncommitted_changes_are_refused_before_training(workspace, corpus):
    tiny_train(workspace)
    before = seeded_ledger(workspace)
    proc = run_eval(workspace, corpus, "--max-steps", "1")
    assert proc.returncode == 1
    rows = new_rows(workspace, before)
    assert [(r["status"], r["dirty"], r["train_wall_s"]) for r in rows] == [("invalid", "1", "")]
    assert "uncommitted changes (train.py)" in rows[0]["reason"] and "commit first" in rows[0]["reason"]


# train.py hangs (with a child) before it imports torch, so the hard limit is not spent on imports, whose
# time grows with the machine's load; the pid file is written whole (rename) for the tests that poll it.
HANG = ("from __future__ import annotations\n",
        "from __future__ import annotations\n"
        "import os, subprocess, time\n"
        "child = subprocess.Popen(['sleep', '600'])\n"
        "with open(os.environ['PIDFILE'] + '.tmp', 'w') as f:\n"
        "    f.write(f'{os.getpid()} {child.pid}')\n"
        "os.replace(os.environ['PIDFILE'] + '.tmp', os.environ['PIDFILE'])\n"
        "time.sleep(600)\n")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


def survivors(pids: list[int], within_s: float = 10.0) -> list[int]:
    """The pids still alive after `within_s` (a killed process needs to be scheduled once to die)."""
    deadline = time.monotonic() + within_s
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


# The two tests below read train.py's host pids from a file outside the workspace, so they run --unsandboxed;
# tests/e2e/test_tamper.py checks the same inside the sandbox (a detached child and a sleeper).
def test_hanging_train_is_killed_at_the_hard_limit(workspace, corpus, tmp_path):
    tiny_train(workspace, HANG)
    git("commit", "-qam", "hang", cwd=workspace)
    before = seeded_ledger(workspace)
    pidfile = tmp_path / "pids"
    proc = run_eval(workspace, corpus, "--hard-limit-s", "12", "--unsandboxed", PIDFILE=str(pidfile))
    assert proc.returncode == 1
    rows = new_rows(workspace, before)
    assert [r["status"] for r in rows] == ["timeout"]
    assert "hard limit of 12s" in rows[0]["reason"] and rows[0]["sandbox"] == "none"
    assert pidfile.exists(), "train.py was killed before it reached its first line"
    pids = [int(p) for p in pidfile.read_text().split()]
    assert survivors(pids) == [], "train.py or its child survived the hard limit"


def test_queue_kill_of_the_process_group_records_a_killed_row(workspace, corpus, tmp_path):
    tiny_train(workspace, HANG)
    git("commit", "-qam", "hang", cwd=workspace)
    before = seeded_ledger(workspace)
    pidfile = tmp_path / "pids"
    cmd = [sys.executable, str(workspace / "eval.py"), "--source", str(corpus), "--unsandboxed"]
    proc = subprocess.Popen(cmd, cwd=workspace, env=run_env(PIDFILE=str(pidfile)), start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not pidfile.exists() or len(pidfile.read_text().split()) < 2:
        assert time.time() < deadline and proc.poll() is None, "train.py never started"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGTERM)  # what a queue's kill does: the whole group
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 143
    rows = new_rows(workspace, before)
    assert [r["status"] for r in rows] == ["killed"]
    assert "SIGTERM" in rows[0]["reason"]
    assert summary(out)["status"] == "killed"
    assert survivors([int(p) for p in pidfile.read_text().split()]) == [], "train.py or its child survived the kill"


@pytest.mark.slow
def test_altered_data_cache_is_an_invalid_row_and_is_not_rebuilt(workspace, corpus):
    tiny_train(workspace)
    git("commit", "-qam", "tiny", cwd=workspace)
    assert run_eval(workspace, corpus, "--max-steps", "1").returncode == 0
    (val,) = (workspace / ".cache" / "data").glob("*/val.bin")
    val.write_bytes(val.read_bytes()[:-10])
    before = (workspace / "results.tsv").read_bytes()
    proc = run_eval(workspace, corpus, "--max-steps", "1")
    assert proc.returncode == 1
    rows = new_rows(workspace, before)
    assert rows[0]["status"] == "invalid"
    assert "was altered" in rows[0]["reason"] and "just prepare" in rows[0]["reason"]
    val.unlink()
    proc = run_eval(workspace, corpus, "--max-steps", "1")
    assert "val.bin is missing" in ledger.read(workspace / "results.tsv")[0][-1]["reason"]


def test_missing_source_is_an_invalid_row(workspace, tmp_path):
    before = (workspace / "results.tsv").read_bytes()
    proc = run_eval(workspace, tmp_path / "no-such-dir")
    assert proc.returncode == 1
    rows = new_rows(workspace, before)
    assert rows[0]["status"] == "invalid" and "is not a directory" in rows[0]["reason"]


def test_bad_run_id_from_the_queue_fails_before_training_and_writes_nothing(workspace, corpus):
    before = (workspace / "results.tsv").read_bytes()
    proc = run_eval(workspace, corpus, LAB_RUN_ID="bad id; rm -rf /")
    assert proc.returncode == 2
    assert "LAB_RUN_ID" in proc.stderr and "not an identifier" in proc.stderr
    assert (workspace / "results.tsv").read_bytes() == before


@pytest.mark.slow
def test_run_id_and_label_from_the_environment_land_in_the_row(workspace, corpus):
    tiny_train(workspace)
    git("commit", "-qam", "tiny", cwd=workspace)
    proc = run_eval(workspace, corpus, "--max-steps", "1", LAB_RUN_ID="q-42", LAB_LABEL="Q: does it help?\tH: expect -0.02")
    assert proc.returncode == 0, proc.stderr[-2000:]
    row = ledger.read(workspace / "results.tsv")[0][-1]
    assert (row["run_id"], row["label"]) == ("q-42", "Q: does it help?\tH: expect -0.02")


@pytest.mark.slow
def test_worktree_eval_uses_root_grader_and_appends_to_root_ledger(workspace, corpus):
    git("worktree", "add", "-q", "5_worktrees/wider", "-b", "exp/wider", cwd=workspace)
    tree = workspace / "5_worktrees" / "wider"
    tiny_train(tree)
    git("commit", "-qam", "wider: tiny", cwd=tree)  # a real eval of an experiment grades a commit that smoke passed
    smoke = subprocess.run(["just", "smoke", "--source", str(corpus), "--budget-s", "1"], cwd=tree, env=run_env(),
                           capture_output=True, text=True, timeout=240)
    assert smoke.returncode == 0, smoke.stderr[-2000:]
    root_before = (workspace / "results.tsv").read_bytes()
    tree_before = (tree / "results.tsv").read_bytes()

    def just_eval() -> subprocess.CompletedProcess:
        return subprocess.run(["just", "eval", "--source", str(corpus), "--max-steps", "2"], cwd=tree, env=run_env(),
                              capture_output=True, text=True, timeout=240)

    proc = just_eval()
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tree / "results.tsv").read_bytes() == tree_before
    rows = new_rows(workspace, root_before)
    assert [(r["slug"], r["branch"], r["status"]) for r in rows] == [("wider", "exp/wider", "ok")]
    assert rows[0]["eval_sha"] == hashlib.sha256((workspace / "eval.py").read_bytes()).hexdigest()[:16]
    assert rows[0]["train_sha"] == hashlib.sha256((tree / "train.py").read_bytes()).hexdigest()[:16]
    assert rows[0]["dirty"] == "0" and rows[0]["commit"] == git("rev-parse", "HEAD", cwd=tree).strip()

    marker = tree / "worktree-eval-ran"
    (tree / "eval.py").write_text(f"open({str(marker)!r}, 'w').write('tampered grader ran')\n")
    proc = just_eval()
    assert proc.returncode == 1
    assert not marker.exists(), "the worktree's eval.py ran"
    last = ledger.read(workspace / "results.tsv")[0][-1]
    assert last["status"] == "invalid" and "eval.py (worktree)" in last["reason"]


def test_a_foreground_eval_is_in_flight_and_one_killed_from_outside_becomes_one_killed_row(workspace, corpus):
    """An agent's tool timeout SIGKILLs `just eval`: while it runs `lab next` must not hand out its seed again,
    and once it is dead its run gets exactly one `killed` row (no orphaned record, no lost run)."""
    proc = subprocess.Popen(["just", "eval", "--source", str(corpus), "--max-steps", "500"], cwd=workspace, env=run_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    running = workspace / jobs.RUNNING_DIR
    deadline = time.monotonic() + 180
    while not list(running.glob("*.json")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    record = json.loads(next(running.glob("*.json")).read_text())
    step = status.summarize(workspace).step
    assert step["command"] == "just eval --seed 1" and "1 on their way" in step["say"]  # seed 0 is in flight
    os.killpg(proc.pid, signal.SIGKILL)  # no handler runs: eval.py cannot write its own row
    proc.wait(timeout=60)
    deadline = time.monotonic() + 30
    while jobs.run_alive(workspace, record["run_id"]) and time.monotonic() < deadline:  # `just` dies before eval.py
        time.sleep(0.1)
    assert ledger.read(workspace / "results.tsv")[0] == []
    status.summarize(workspace)
    rows = ledger.read(workspace / "results.tsv")[0]
    assert [(r["run_id"], r["status"], r["seed"]) for r in rows] == [(record["run_id"], "killed", "0")]
    assert "died before writing its row" in rows[0]["reason"] and rows[0]["max_steps"] == "500"
    before = (workspace / "results.tsv").read_bytes()
    assert status.summarize(workspace).step["command"] == "just eval --seed 0"  # the seed is free again
    assert (workspace / "results.tsv").read_bytes() == before and list(running.iterdir()) == []
