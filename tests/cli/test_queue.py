"""The queue around pueue, on real checkouts: smoke gate, foreground jobs, run ids into rows, reconciliation.

pueue itself is not needed here (tests/cli/test_queue_live.py drives a real daemon when one is installed):
the gate and --foreground run real `just smoke`/`just eval`, and reconciliation reads real pueue
status output from tests/fixtures/pueue with a run id put into a task's environment.

Cost on a 2-core machine: ~20 s for the 11 tests that train nothing (fast set; the unreadable record
runs eval.py up to its check); the 2 that train (the gate with foreground jobs, ~2.5 min; the run id
landing once, ~50 s) are marked slow. Run: `just test tests/cli/test_queue.py`, `just test-all tests/cli/test_queue.py`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import git, lab_in_process, make_workspace, path_without_pueue, run_env, tiny_train

from lab import jobs, ledger, runs
from lab.loop import ideas
from lab.queue import pueue, queue

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pueue"
Q, H = "does a lower lr help?", "expect -0.02 val_bpb"


def lab(cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lab.cli", *args], cwd=cwd, env=env or run_env(),
                          capture_output=True, text=True, timeout=600)


def just(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(["just", *args], cwd=cwd, env=run_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"just {' '.join(args)}: {proc.stderr[-3000:]}"
    return proc


def started(workspace: Path, slug: str = "lower-lr") -> Path:
    """A critiqued idea's worktree with a tiny, committed train.py change."""
    assert lab(workspace, "idea", "new", slug, "--title", "Halve the learning rate").returncode == 0
    ideas.set_status(workspace, slug, "critiqued")  # the critique's own path is tests/cli/test_ideas.py's
    git("add", "1_ideas", cwd=workspace)
    git("commit", "-qm", f"idea: {slug}", cwd=workspace)
    assert lab(workspace, "start", slug).returncode == 0
    tree = workspace / "5_worktrees" / slug
    tiny_train(tree, ("lr=2e-3, warmup_steps=30", "lr=1e-3, warmup_steps=30"))
    git("commit", "-qam", f"{slug}: halve the learning rate", cwd=tree)
    return tree


def rows_of(workspace: Path) -> list[dict]:
    rows, problems = ledger.read(workspace / "results.tsv")
    assert not problems
    return rows


@pytest.mark.slow
def test_gate_then_foreground_jobs_land_rows_with_run_id_label_and_prediction(workspace, corpus):
    tree = started(workspace)
    refused = lab(workspace, "queue", "lower-lr", "--q", Q, "--h", H, "--foreground")
    assert refused.returncode == 1 and "`just smoke` has not passed" in refused.stderr and "cd 5_worktrees/lower-lr" in refused.stderr

    just(tree, "smoke", "--source", str(corpus), "--budget-s", "1")
    (tree / "train.py").write_text((tree / "train.py").read_text() + "\n# uncommitted\n")
    dirty = lab(workspace, "queue", "lower-lr", "--q", Q, "--h", H, "--foreground")
    assert dirty.returncode == 1 and "uncommitted: train.py" in dirty.stderr
    git("checkout", "--", "train.py", cwd=tree)

    before = rows_of(workspace)
    ok = lab(tree, "queue", "lower-lr", "--q", Q, "--h", H, "--seeds", "2", "--foreground",
             "--", "--source", str(corpus), "--max-steps", "2")
    assert ok.returncode == 0, ok.stderr[-3000:]
    new = rows_of(workspace)[len(before):]
    assert [r["status"] for r in new] == ["ok", "ok"]
    assert [r["seed"] for r in new] == ["0", "1"]
    assert all(f"run {r['run_id']}:" in ok.stderr for r in new)  # the run ids it announced are the rows'
    # a foreground job's record lives only while it runs: nothing is left to look in flight or orphaned
    assert list((workspace / jobs.QUEUE_DIR).glob("*.json")) == [] and list((workspace / jobs.RUNNING_DIR).glob("*"))  == []
    assert all(r["label"] == f"Q: {Q} H: {H}" and r["predicted_delta"] == "-0.02" and r["pueue_task"] == "" for r in new)
    assert all(r["commit"] == git("rev-parse", "HEAD", cwd=tree).strip() for r in new)

    # the next --seeds picks the seeds that have no ok row yet
    assert runs.next_seeds(rows_of(workspace), "lower-lr", new[0]["train_sha"], new[0], [], 2) == [2, 3]


@pytest.mark.slow
def test_a_queued_run_id_lands_with_its_task_and_is_never_recorded_twice(workspace, corpus):
    tiny_train(workspace)
    git("commit", "-qam", "tiny", cwd=workspace)
    job = {"run_id": "20261123-101010-beef", "task": 17, "predicted_delta": -0.02}
    jobs.write_job(workspace, job)
    env = run_env(LAB_RUN_ID=job["run_id"], LAB_LABEL="Q: x? H: expect -0.02")
    cmd = ["just", "eval", "--source", str(corpus), "--max-steps", "1"]
    first = subprocess.run(cmd, cwd=workspace, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    row = rows_of(workspace)[-1]
    assert (row["run_id"], row["pueue_task"], row["predicted_delta"], row["label"]) == \
        (job["run_id"], "17", "-0.02", "Q: x? H: expect -0.02")

    before = (workspace / "results.tsv").read_bytes()
    again = subprocess.run(cmd, cwd=workspace, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 2 and "already has a row" in again.stderr and "pueue restart" in again.stderr
    assert (workspace / "results.tsv").read_bytes() == before


def test_an_unreadable_queue_record_stops_eval_before_training(workspace, corpus):
    run_id = "20261123-101010-dead"
    (workspace / jobs.QUEUE_DIR).mkdir(parents=True)
    jobs.job_path(workspace, run_id).write_text("{not json")
    proc = subprocess.run(["just", "eval", "--source", str(corpus), "--max-steps", "1"], cwd=workspace,
                          env=run_env(LAB_RUN_ID=run_id), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2 and f"record of run {run_id} is unreadable" in proc.stderr
    assert rows_of(workspace) == []


def _status_with_run_ids(root: Path, run_ids: dict[int, str]) -> dict[int, pueue.Task]:
    """The real all-states status, with our run ids in some tasks' environments and their queue records."""
    raw = json.loads((FIXTURES / "03-states" / "status-json-all-states.stdout").read_text())
    for task_id, run_id in run_ids.items():
        raw["tasks"][str(task_id)]["envs"]["LAB_RUN_ID"] = run_id
        jobs.write_job(root, {
            "run_id": run_id, "task": task_id, "slug": "lower-lr", "branch": "exp/lower-lr", "commit": "a" * 40, "dirty": False,
            "label": f"Q: {Q} H: {H}", "predicted_delta": -0.02, "seed": task_id, "budget_s": 300.0, "max_steps": None,
            "device": "cuda", "host": "gpu-box", "eval_sha": "b" * 16, "prepare_sha": "c" * 16, "train_sha": "d" * 16})
    return pueue.parse_status(json.dumps(raw))[0]


def test_reconcile_writes_one_row_per_dead_job_exactly_once(workspace):
    ids = {9: "20261123-091901-0009", 6: "20261123-091901-0006", 8: "20261123-091901-0008",
           10: "20261123-091901-0010", 5: "20261123-091901-0005", 0: "20261123-091901-0000"}
    tasks = _status_with_run_ids(workspace, ids)
    log = json.loads((FIXTURES / "04-log" / "log-json-17-lines3.stdout").read_text())["17"]["output"]
    found = queue.ours(workspace, tasks)
    assert sorted(j.task.id for j in found) == sorted(ids)

    added = queue.reconcile(workspace, found, tail=lambda task_id: log)
    by_task = {r["pueue_task"]: r for r in rows_of(workspace)}
    # Killed, Failed(3), FailedToSpawn, DependencyFailed get rows; Success (5) and Running (0) do not
    assert sorted(r["pueue_task"] for r in added) == [6, 8, 9, 10]
    assert by_task["9"]["status"] == "killed" and "pueue task 9 was killed" in by_task["9"]["reason"]
    assert by_task["6"]["status"] == "crash" and "exit code 3" in by_task["6"]["reason"]
    assert "Failed to spawn child" in by_task["8"]["reason"] and "--after" in by_task["10"]["reason"]
    assert by_task["9"]["run_id"] == ids[9] and by_task["9"]["label"] == f"Q: {Q} H: {H}"
    assert by_task["9"]["time"] == "2026-11-23T08:19:03Z"  # pueue's end time (+01:00) in UTC
    tail = workspace / jobs.QUEUE_DIR / f"{ids[9]}.log"
    assert f"log tail: {tail.relative_to(workspace)}" in by_task["9"]["reason"] and tail.read_text() == log + "\n"

    before = (workspace / "results.tsv").read_bytes()
    assert queue.reconcile(workspace, queue.ours(workspace, tasks), tail=lambda task_id: log) == []
    assert (workspace / "results.tsv").read_bytes() == before


def test_a_job_pueue_no_longer_lists_gets_a_killed_row_once(workspace):
    tasks = _status_with_run_ids(workspace, {9: "20261123-091901-0009"})
    jobs.write_job(workspace, {**jobs.read_job(workspace, "20261123-091901-0009"), "run_id": "20261123-091901-0042",
                               "task": 42})  # e.g. `pueue clean` or `pueue reset` before lab saw it end
    jobs.write_job(workspace, {**jobs.read_job(workspace, "20261123-091901-0009"), "run_id": "20261123-091901-0043",
                               "task": None})  # a --foreground job: never pueue's
    found = queue.ours(workspace, tasks)
    added = queue.reconcile(workspace, found, tasks, tail=lambda task_id: "")
    gone = [r for r in added if r["run_id"] == "20261123-091901-0042"]
    assert len(gone) == 1 and gone[0]["status"] == "killed" and "no longer lists task 42" in gone[0]["reason"]
    assert "20261123-091901-0043" not in {r["run_id"] for r in added}
    assert queue.reconcile(workspace, queue.ours(workspace, tasks), tasks, tail=lambda task_id: "") == []
    assert jobs.pending(workspace, {r["run_id"] for r in rows_of(workspace)}) == {}


def hold_lock_in_another_process(root: Path, run_id: str) -> subprocess.Popen:
    """A process that holds run `run_id`'s lock (as eval.py does) until it is killed."""
    code = ("import sys, time; from lab import jobs; jobs.hold_run_lock(sys.argv[1], sys.argv[2]); "
            "print('held', flush=True); time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(root), run_id], cwd=Path(__file__).parents[2],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "held\n"
    return proc


def test_a_run_is_alive_exactly_while_a_process_holds_its_lock(tmp_path):
    run_id = "20261123-091901-0009"
    assert not jobs.run_alive(tmp_path, run_id)  # no lock file: never started
    holder = hold_lock_in_another_process(tmp_path, run_id)
    try:
        assert jobs.run_alive(tmp_path, run_id) and jobs.run_alive(tmp_path, run_id)  # probing takes nothing away
        assert (tmp_path / jobs.RUNNING_DIR / f"{run_id}.lock").read_text() == f"{holder.pid}\n"
        with pytest.raises(ValueError, match=f"another eval of run {run_id} is running"):
            jobs.hold_run_lock(tmp_path, run_id)  # the same run evaluated twice at once
        assert not jobs.wait_run(tmp_path, run_id, timeout=0.6)
    finally:
        holder.kill()  # SIGKILL: no handler, no cleanup; the kernel drops the lock
        holder.wait()
    assert not jobs.run_alive(tmp_path, run_id) and jobs.wait_run(tmp_path, run_id, timeout=5)
    mine = jobs.hold_run_lock(tmp_path, run_id)  # free again: this process may take it
    assert jobs.run_alive(tmp_path, run_id)
    mine.close()  # (an eval keeps it until it exits; a test closes it)


def test_reconcile_writes_nothing_for_a_killed_task_whose_eval_still_runs(workspace):
    """After a daemon crash pueue says Killed while the orphaned eval runs on: no row until it dies without one."""
    run_id = "20261123-091901-0009"
    tasks = _status_with_run_ids(workspace, {9: run_id})  # task 9 is Done/Killed
    holder = hold_lock_in_another_process(workspace, run_id)
    try:
        assert queue.reconcile(workspace, queue.ours(workspace, tasks), tasks, tail=lambda task_id: "") == []
        assert not (workspace / jobs.QUEUE_DIR / f"{run_id}.log").exists()
        rows = [queue.row_for(jobs.read_job(workspace, run_id), "killed", "x")]
        assert ledger.append_new(rows, workspace / "results.tsv", unless=lambda r: jobs.run_alive(workspace, r["run_id"])) == []
        assert rows_of(workspace) == []
    finally:
        holder.kill()
        holder.wait()
    added = queue.reconcile(workspace, queue.ours(workspace, tasks), tasks, tail=lambda task_id: "")
    assert [(r["run_id"], r["status"]) for r in added] == [(run_id, "killed")]
    assert queue.reconcile(workspace, queue.ours(workspace, tasks), tasks, tail=lambda task_id: "") == []


def test_eval_refuses_a_run_id_that_was_recorded_killed_before_it_took_the_lock(workspace, corpus):
    """The other order: the queue wrote `killed` first; an eval of that run id starting late writes nothing."""
    run_id = "20261123-091901-0009"
    tasks = _status_with_run_ids(workspace, {9: run_id})
    assert len(queue.reconcile(workspace, queue.ours(workspace, tasks), tail=lambda task_id: "")) == 1
    before = (workspace / "results.tsv").read_bytes()
    proc = subprocess.run(["just", "eval", "--source", str(corpus), "--max-steps", "1"], cwd=workspace,
                          env=run_env(LAB_RUN_ID=run_id), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2 and f"run {run_id} already has a row" in proc.stderr, proc.stderr[-2000:]
    assert (workspace / "results.tsv").read_bytes() == before


def test_paused_stashed_and_queued_in_a_paused_group_block_pueue_wait():
    tasks = pueue.parse_status((FIXTURES / "03-states" / "status-json-all-states.stdout").read_text())[0]
    found = [queue.Job(t, {}, None) for t in tasks.values()]
    groups = {"default": {"status": "Paused", "parallel_tasks": 1}, "gpu": {"status": "Running", "parallel_tasks": 2}}
    why = queue.blocked(found, [0, 1, 2, 4, 5], groups)
    assert sorted(why) == [1, 2, 4]  # Running (0) and Done (5) end on their own
    assert "paused group 'default'" in why[1] and "pueue enqueue 2" in why[2] and "pueue start 4" in why[4]
    assert sorted(queue.blocked(found, [0, 1, 2, 4, 5])) == [2, 4]  # without the groups: the tasks' own states


def test_tasks_of_another_workspace_or_without_a_run_id_are_not_ours(workspace, tmp_path):
    tasks = _status_with_run_ids(workspace, {9: "20261123-091901-0009"})
    other = make_workspace(tmp_path / "other")  # a second clone sharing the same pueue daemon
    assert [j.task.id for j in queue.ours(workspace, tasks)] == [9]
    assert queue.ours(other, tasks) == []


def test_a_job_gets_the_gpu_of_its_slot_unless_the_user_chose_one():
    env = {"PUEUE_WORKER_ID": "1"}
    assert jobs.pin_gpu(env, 2) == "1" and env["CUDA_VISIBLE_DEVICES"] == "1" and env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    shared = {"PUEUE_WORKER_ID": "3"}  # four slots on two GPUs: two jobs per GPU
    assert jobs.pin_gpu(shared, 2) == "1" and shared["CUDA_VISIBLE_DEVICES"] == "1"
    one_gpu = {"PUEUE_WORKER_ID": "1"}  # `lab setup --slots 2` on a one-GPU box: both slots on GPU 0
    assert jobs.pin_gpu(one_gpu, 1) == "0"
    chosen = {"PUEUE_WORKER_ID": "1", "CUDA_VISIBLE_DEVICES": "3"}
    assert jobs.pin_gpu(chosen, 4) is None and chosen["CUDA_VISIBLE_DEVICES"] == "3"
    no_gpu = {"PUEUE_WORKER_ID": "0"}
    assert jobs.pin_gpu(no_gpu, 0) is None and "CUDA_VISIBLE_DEVICES" not in no_gpu
    outside = {}
    assert jobs.pin_gpu(outside, 2) is None and "CUDA_VISIBLE_DEVICES" not in outside


def test_without_pueue_the_queue_says_how_to_install_it_and_offers_foreground(workspace, tmp_path):
    tree = started(workspace)
    jobs.record_smoke(workspace, jobs.content_key(tree), jobs.file_sha(workspace / "eval.py"), "x",
                      git("rev-parse", "HEAD", cwd=tree).strip(), 1.0)
    env = run_env(PATH=path_without_pueue(tmp_path))
    add = lab(tree, "queue", "lower-lr", "--q", Q, "--h", H, env=env)
    assert add.returncode == 1
    assert "pueue is not installed" in add.stderr and "cargo install" in add.stderr and "--foreground" in add.stderr
    assert not list((workspace / jobs.QUEUE_DIR).glob("*.json"))  # nothing half-queued
    watch = lab(workspace, "queue", "status", env=env)
    assert watch.returncode == 1 and "pueue is not installed" in watch.stderr
    setup = lab(workspace, "setup", env=env)
    assert setup.returncode == 0 and "pueue is not installed" in setup.stdout and "--foreground" in setup.stdout


@pytest.mark.parametrize("args, needle", [
    (["../x"], "is not 1-40 lowercase"),
    (["nosuch"], "no worktree 5_worktrees/nosuch"),
    (["lower-lr", "--", "--seed", "3"], "pass seeds with --seeds"),
    (["lower-lr", "--seeds", "0"], "ask for at least one seed"),
])
def test_bad_queue_input_is_one_line_and_queues_nothing(workspace, args, needle):
    tree = started(workspace)
    jobs.record_smoke(workspace, jobs.content_key(tree), jobs.file_sha(workspace / "eval.py"), "x",
                      git("rev-parse", "HEAD", cwd=tree).strip(), 1.0)
    slug, rest = args[0], args[1:]
    dash = rest.index("--") if "--" in rest else len(rest)
    proc = lab_in_process("queue", slug, "--q", Q, "--h", H, "--foreground", *rest[:dash], *rest[dash:], cwd=workspace)
    assert proc.returncode != 0 and needle in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not list((workspace / jobs.QUEUE_DIR).glob("*.json"))
    assert rows_of(workspace) == []


def test_empty_question_or_hypothesis_is_refused(workspace):
    started(workspace)
    for q, h in (("", H), (Q, "   ")):
        proc = lab(workspace, "queue", "lower-lr", "--q", q, "--h", h, "--foreground")
        assert proc.returncode == 1 and "--q (the question" in proc.stderr
