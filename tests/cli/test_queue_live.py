"""The queue against a live pueue daemon: slots, labels, waits, kills, restarts, pauses, and the daemon's crash.

Each test starts a private `pueued` (own config, state and socket in a short temp dir, reached through
PUEUE_CONFIG_PATH) and stops it after; jobs train train.py's tiny variant (conftest.tiny_train) for a
step or time budget of seconds. Cost on 2 shared CPU cores: 0.5-2.5 min per test, 4-6 min for the
six-job one, ~11 min for the file (`uv run pytest tests/cli/test_queue_live.py`). Where `pueue`/`pueued` are not on PATH they skip with the
reason, except under CI (`CI` set), where that is an error: .ci/run installs the pinned pueue.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import git, run_env, tiny_train
from test_queue import H, Q, just, lab, rows_of

from lab import jobs, ledger, procs, runs
from lab.loop import ideas
from lab.queue import pueue

HAVE_PUEUE = bool(shutil.which("pueue") and shutil.which("pueued"))
INSTALL = f"cargo install --locked pueue --version {pueue.TESTED_VERSION}"
if os.environ.get("CI"):  # CI must run these, against the release they were written for
    if not HAVE_PUEUE:
        pytest.fail(f"CI is set but pueue/pueued are not on PATH: the live queue tests must run there ({INSTALL}; "
                    ".ci/run does it)", pytrace=False)
    version = subprocess.run(["pueue", "--version"], capture_output=True, text=True).stdout.strip()
    if version != f"pueue {pueue.TESTED_VERSION}":
        pytest.fail(f"CI is set and `pueue --version` says {version!r}, not pueue {pueue.TESTED_VERSION}: {INSTALL}",
                    pytrace=False)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not HAVE_PUEUE, reason=f"pueue/pueued not on PATH: live queue tests need a real pueue "
                                              f"({INSTALL}); the fixture-based tests still ran"),
]
LABEL = f"Q: {Q} H: {H}"
LAB = [sys.executable, "-m", "lab.cli"]


class Daemon:
    """A private pueued: its own config, state and socket under a short temp dir (PUEUE_CONFIG_PATH)."""

    def __init__(self) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="pq-"))  # short: the socket path must fit in 108 bytes
        config = self.home / "pueue.yml"
        config.write_text(
            f"shared:\n  pueue_directory: {self.home}/data\n  runtime_directory: {self.home}/run\n"
            f"  use_unix_socket: true\n  unix_socket_path: {self.home}/run/pueue.socket\n"
            "client:\n  show_confirmation_questions: false\n"
            "daemon:\n  pause_group_on_failure: false\n  pause_all_on_failure: false\n")
        (self.home / "run").mkdir()  # pueued 4.0.4 does not create it: without it, no pid file and no daemon
        self.env = run_env(PUEUE_CONFIG_PATH=str(config))
        self.seen: set[int] = set()  # every task process seen, killed at close if still alive
        self.start()

    def start(self) -> None:
        with open(self.home / "pueued.log", "ab") as log:
            self.proc = subprocess.Popen(["pueued", "-v"], env=self.env, stdout=log, stderr=log, start_new_session=True)
        for _ in range(200):
            if subprocess.run(["pueue", "status", "--json"], env=self.env, capture_output=True).returncode == 0:
                return
            time.sleep(0.1)
        pytest.fail(f"private pueued did not answer within 20 s (log: {self.home / 'pueued.log'})")

    def pueue(self, *args: str) -> str:
        return subprocess.run(["pueue", *args], env=self.env, capture_output=True, text=True, check=True).stdout

    def tasks(self) -> dict:
        return json.loads(self.pueue("status", "--json"))["tasks"]

    def task_processes(self) -> list[int]:
        found = procs.descendants(self.proc.pid)
        self.seen.update(found)
        return found

    def explain(self, tasks: list[int]) -> str:
        """Each task's pueue status and output tail, and the daemon's log tail: what a timed-out wait shows."""
        raw = self.tasks()
        parts = [f"\n--- task {t}: {json.dumps(raw[str(t)]['status'])}\n{pueue.log_tail(t, 40, env=self.env)}" for t in tasks]
        log = (self.home / "pueued.log").read_text(errors="replace").splitlines()[-20:]
        return "".join(parts) + "\n--- pueued.log (tail)\n" + "\n".join(log)

    def crash(self) -> None:
        """SIGKILL pueued alone: its tasks' processes live on, orphaned."""
        self.task_processes()
        self.proc.kill()
        self.proc.wait()

    def reboot(self) -> None:
        """What a power cut leaves: the daemon and every process of every task dead at once, no handler run."""
        self.task_processes()
        procs.kill_tree(self.proc.pid)
        self.proc.wait()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.task_processes()
        subprocess.run(["pueue", "shutdown"], env=self.env, capture_output=True, timeout=30)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        for pid in self.seen:  # orphans of a crash test that outlived it
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.home, ignore_errors=True)


@pytest.fixture
def daemon():
    d = Daemon()
    yield d
    d.close()


def queued_ids(stdout: str) -> list[int]:
    return [int(line.split()[1].rstrip(":")) for line in stdout.splitlines() if line.startswith("task ")]


def experiment(workspace: Path, slug: str, edit: tuple[str, str]) -> Path:
    """A critiqued idea's worktree from a (tiny) main with one committed train.py edit."""
    assert lab(workspace, "idea", "new", slug, "--title", f"Try {slug}").returncode == 0
    ideas.set_status(workspace, slug, "critiqued")
    git("add", "1_ideas", cwd=workspace)
    git("commit", "-qm", f"idea: {slug}", cwd=workspace)
    assert lab(workspace, "start", slug).returncode == 0
    git("commit", "-qam", f"start {slug}", "--allow-empty", cwd=workspace)  # `lab start` marks the idea started
    tree = workspace / "5_worktrees" / slug
    text = (tree / "train.py").read_text()
    assert edit[0] in text
    (tree / "train.py").write_text(text.replace(edit[0], edit[1]))
    git("commit", "-qam", f"{slug}: {edit[1]}", cwd=tree)
    return tree


def tiny_main(workspace: Path) -> None:
    tiny_train(workspace)
    git("commit", "-qam", "tiny train.py for the queue tests", cwd=workspace)


def passed_smoke(workspace: Path, checkout: Path) -> None:
    """Record a smoke pass for the checkout's HEAD as eval.py would (the real gate runs in the six-job test)."""
    jobs.record_smoke(workspace, jobs.content_key(checkout), jobs.file_sha(workspace / "eval.py"),
                      jobs.file_sha(checkout / "train.py"), git("rev-parse", "HEAD", cwd=checkout).strip(), 1.0)


def queue(cwd: Path, slug: str, daemon: Daemon, *eval_args: str, seeds: int = 1) -> list[int]:
    add = lab(cwd, "queue", slug, "--q", Q, "--h", H, "--seeds", str(seeds), "--", *eval_args, env=daemon.env)
    assert add.returncode == 0, add.stdout + add.stderr
    return queued_ids(add.stdout)


def until(what: str, check, timeout: float = 180.0, daemon: Daemon | None = None, tasks: list[int] = ()) -> None:
    """Poll `check`; on timeout, or as soon as one of `tasks` has ended, fail with what the daemon saw."""
    deadline = time.monotonic() + timeout
    while not check():
        ended = daemon is not None and any("Done" in daemon.tasks()[str(t)]["status"] for t in tasks)
        if ended or time.monotonic() > deadline:
            why = "a task ended" if ended else f"timed out after {timeout:.0f}s"
            pytest.fail(f"{why} waiting until {what}" + (daemon.explain(tasks) if daemon else ""))
        time.sleep(0.2)


def run_id_of(daemon: Daemon, task: int) -> str:
    return daemon.tasks()[str(task)]["envs"]["LAB_RUN_ID"]


def training(workspace: Path, run_id: str) -> bool:
    """eval.py holds the run's lock and train.py has started writing its log."""
    log = workspace / ".cache" / "runs" / run_id / "train.log"
    return jobs.run_alive(workspace, run_id) and log.is_file() and log.stat().st_size > 0


def rows_by_run(workspace: Path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows_of(workspace):
        out.setdefault(r["run_id"], []).append(r)
    return out


def status_json(workspace: Path, daemon: Daemon) -> dict:
    proc = lab(workspace, "queue", "status", "--json", env=daemon.env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_six_jobs_from_two_worktrees_and_main_share_two_slots(workspace, corpus, daemon):
    tiny_main(workspace)
    a = experiment(workspace, "lower-lr", ("lr=2e-3, warmup_steps=30", "lr=1e-3, warmup_steps=30"))
    b = experiment(workspace, "wider", ("d_model=32", "d_model=48"))
    refused = lab(a, "queue", "lower-lr", "--q", Q, "--h", H, env=daemon.env)
    assert refused.returncode == 1 and "`just smoke` has not passed" in refused.stderr  # the gate, live
    just(a, "smoke", "--source", str(corpus), "--budget-s", "1")
    passed_smoke(workspace, b)
    passed_smoke(workspace, workspace)
    setup = lab(workspace, "setup", "--slots", "2", env=daemon.env)
    assert setup.returncode == 0 and "2 slot(s)" in setup.stdout, setup.stderr

    args = ("--source", str(corpus), "--max-steps", "2")
    ids = queue(a, "lower-lr", daemon, *args, seeds=2) + queue(b, "wider", daemon, *args, seeds=2) \
        + queue(workspace, "main", daemon, *args, seeds=2)
    assert len(ids) == 6

    table = daemon.pueue("status", "--group", "lab")  # what a person sees, no --json
    for task in ids:
        assert any(re.match(rf"\s*{task}\s", line) and LABEL in line for line in table.splitlines()), table

    waited = lab(workspace, "wait", env=daemon.env)  # no timeout: every unfinished job
    assert waited.returncode == 0, waited.stdout + waited.stderr
    print(waited.stdout)
    assert sorted(queued_ids(waited.stdout)) == sorted(ids)
    assert sum(" ok val_bpb " in line for line in waited.stdout.splitlines()) == 6

    raw = daemon.tasks()
    by_task = {r["pueue_task"]: r for r in rows_of(workspace)}
    assert len(rows_of(workspace)) == 6
    for task in ids:
        env, row = raw[str(task)]["envs"], by_task[str(task)]
        assert row["run_id"] == env["LAB_RUN_ID"] and row["status"] == "ok" and row["label"] == LABEL
        assert row["predicted_delta"] == "-0.02"
        log = pueue.log_tail(task, 400, env=daemon.env)
        slot = env["PUEUE_WORKER_ID"]  # slot k runs on GPU k mod GPUs; this box may have none
        assert (f"pueue slot {slot}: no GPU on this box" if runs.gpu_count() == 0 else
                f"pueue slot {slot}: CUDA_VISIBLE_DEVICES={int(slot) % runs.gpu_count()}") in log
    assert [by_task[str(t)]["slug"] for t in ids] == ["lower-lr"] * 2 + ["wider"] * 2 + ["main"] * 2
    assert [by_task[str(t)]["seed"] for t in ids] == ["0", "1"] * 3
    assert {raw[str(t)]["envs"]["PUEUE_WORKER_ID"] for t in ids} == {"0", "1"}

    watch = status_json(workspace, daemon)
    assert sorted(j["task"] for j in watch["jobs"]) == sorted(ids) and watch["rows_added"] == []


def test_wait_gives_up_at_its_timeout_and_a_pueue_kill_leaves_one_killed_row(workspace, corpus, daemon):
    tiny_main(workspace)
    passed_smoke(workspace, workspace)
    assert lab(workspace, "setup", env=daemon.env).returncode == 0
    (task,) = queue(workspace, "main", daemon, "--source", str(corpus), "--budget-s", "600")
    run_id = run_id_of(daemon, task)
    until("the job trains", lambda: training(workspace, run_id), daemon=daemon, tasks=[task])

    early = lab(workspace, "wait", str(task), "--timeout", "3", env=daemon.env)
    assert early.returncode == 124 and f"gave up after 3s; still running: {task}" in early.stderr, early.stderr
    daemon.pueue("kill", str(task))
    waited = lab(workspace, "wait", str(task), env=daemon.env)
    assert waited.returncode == 1 and "killed" in waited.stdout, waited.stdout + waited.stderr
    print(waited.stdout)
    rows = rows_by_run(workspace)[run_id]
    assert len(rows) == 1 and rows[0]["status"] == "killed" and rows[0]["pueue_task"] == str(task)
    assert not jobs.run_alive(workspace, run_id)
    before = (workspace / "results.tsv").read_bytes()
    assert status_json(workspace, daemon)["rows_added"] == []
    assert (workspace / "results.tsv").read_bytes() == before


def test_a_pueue_restart_of_a_finished_job_records_nothing_twice(workspace, corpus, daemon):
    tiny_main(workspace)
    passed_smoke(workspace, workspace)
    assert lab(workspace, "setup", env=daemon.env).returncode == 0
    (task,) = queue(workspace, "main", daemon, "--source", str(corpus), "--max-steps", "2")
    assert lab(workspace, "wait", env=daemon.env).returncode == 0
    before = (workspace / "results.tsv").read_bytes()

    daemon.pueue("restart", str(task))  # a copy: a new task with the same environment, so the same run id
    daemon.pueue("restart", "--in-place", str(task))
    copies = [int(i) for i, t in daemon.tasks().items() if t["envs"].get("LAB_RUN_ID") == run_id_of(daemon, task)]
    assert len(copies) == 2
    waited = lab(workspace, "wait", *map(str, copies), env=daemon.env)
    assert waited.returncode == 0, waited.stdout + waited.stderr
    raw = daemon.tasks()
    assert all(raw[str(i)]["status"]["Done"]["result"] == {"Failed": 2} for i in copies)
    assert "already has a row" in pueue.log_tail(task, 5, env=daemon.env)
    assert status_json(workspace, daemon)["rows_added"] == []
    assert (workspace / "results.tsv").read_bytes() == before


def test_a_paused_group_a_stashed_and_a_paused_task_are_reported_not_waited_on(workspace, corpus, daemon):
    tiny_main(workspace)
    passed_smoke(workspace, workspace)
    assert lab(workspace, "setup", env=daemon.env).returncode == 0
    daemon.pueue("pause", "--group", "lab")
    first, second = queue(workspace, "main", daemon, "--source", str(corpus), "--budget-s", "600", seeds=2)
    daemon.pueue("stash", str(second))

    waited = subprocess.run([*LAB, "wait"], cwd=workspace, env=daemon.env, capture_output=True, text=True,
                            timeout=60)  # a hang fails here
    assert waited.returncode == 1, waited.stdout + waited.stderr
    assert f"task {first} is queued in the paused group 'lab'" in waited.stderr
    assert f"task {second} is stashed: enqueue it with `pueue enqueue {second}`" in waited.stderr
    warnings = status_json(workspace, daemon)["warnings"]
    assert any("group 'lab' is paused" in w for w in warnings) and any(f"task {second} is stashed" in w for w in warnings)

    daemon.pueue("start", "--group", "lab")
    run_id = run_id_of(daemon, first)
    until("the job trains", lambda: training(workspace, run_id), daemon=daemon, tasks=[first])
    daemon.pueue("pause", str(first))
    waited = subprocess.run([*LAB, "wait", str(first)], cwd=workspace, env=daemon.env, capture_output=True,
                            text=True, timeout=60)
    assert waited.returncode == 1 and f"task {first} is paused and keeps its slot" in waited.stderr, waited.stderr
    assert rows_of(workspace) == []


def test_a_daemon_crash_leaves_each_run_one_row_and_never_replaces_a_result(workspace, corpus, daemon):
    """pueued SIGKILLed mid-run: pueue marks the tasks Killed on restart, but their evals run on. One eval
    finishes while the daemon is down, one after the restart, one is killed after it: ok, ok, killed."""
    tiny_main(workspace)
    passed_smoke(workspace, workspace)
    assert lab(workspace, "setup", "--slots", "3", env=daemon.env).returncode == 0
    late, dies = queue(workspace, "main", daemon, "--source", str(corpus), "--budget-s", "40", seeds=2)
    (early,) = queue(workspace, "main", daemon, "--source", str(corpus), "--max-steps", "2")
    run = {t: run_id_of(daemon, t) for t in (late, dies, early)}
    until("all three jobs train", lambda: all(training(workspace, r) for r in run.values()), daemon=daemon, tasks=list(run))

    daemon.crash()
    assert jobs.wait_run(workspace, run[early], 180)  # finishes, and writes its row, while no daemon runs
    daemon.start()
    raw = daemon.tasks()
    assert all(raw[str(t)]["status"]["Done"]["result"] == "Killed" for t in run)  # pueue's view of all three
    assert jobs.run_alive(workspace, run[late]) and jobs.run_alive(workspace, run[dies])
    watch = status_json(workspace, daemon)
    assert watch["rows_added"] == []  # two evals alive, one row already there: nothing to write
    assert {j["task"]: j["alive"] for j in watch["jobs"]} == {late: True, dies: True, early: False}

    eval_pid = int((workspace / jobs.RUNNING_DIR / f"{run[dies]}.lock").read_text())
    procs.kill_tree(eval_pid)  # this eval dies without a row (as an OOM kill would do it)
    until("its lock is free", lambda: not jobs.run_alive(workspace, run[dies]), 30)
    assert status_json(workspace, daemon)["rows_added"] == [run[dies]]

    waited = lab(workspace, "wait", env=daemon.env)  # waits for the orphaned eval, not for pueue
    print(waited.stdout)
    assert waited.returncode == 0 and queued_ids(waited.stdout) == [late], waited.stdout + waited.stderr
    assert f"task {late} main seed 0 run {run[late]}: ok val_bpb" in waited.stdout
    assert status_json(workspace, daemon)["rows_added"] == []
    rows = rows_by_run(workspace)
    roles = {early: "finished while pueued was down", late: "finished after its restart", dies: "eval killed after it"}
    for task, run_id in run.items():
        print(f"task {task} run {run_id} ({roles[task]}): rows {[r['status'] for r in rows[run_id]]}")
    assert {run_id: [r["status"] for r in rows[run_id]] for run_id in run.values()} == \
        {run[late]: ["ok"], run[dies]: ["killed"], run[early]: ["ok"]}
    assert len(rows_of(workspace)) == 3
    assert "was killed" in rows[run[dies]][0]["reason"] and rows[run[dies]][0]["pueue_task"] == str(dies)


def test_after_a_reboot_every_run_that_was_running_gets_one_killed_row(workspace, corpus, daemon):
    tiny_main(workspace)
    passed_smoke(workspace, workspace)
    assert lab(workspace, "setup", "--slots", "2", env=daemon.env).returncode == 0
    ids = queue(workspace, "main", daemon, "--source", str(corpus), "--budget-s", "600", seeds=2)
    run = {t: run_id_of(daemon, t) for t in ids}
    until("both jobs train", lambda: all(training(workspace, r) for r in run.values()), daemon=daemon, tasks=list(run))

    daemon.reboot()
    until("no eval holds its lock", lambda: not any(jobs.run_alive(workspace, r) for r in run.values()), 30)
    daemon.start()
    watch = status_json(workspace, daemon)
    assert sorted(watch["rows_added"]) == sorted(run.values())
    rows = rows_by_run(workspace)
    for task, run_id in run.items():
        print(f"after the reboot: task {task} run {run_id}: rows {[r['status'] for r in rows[run_id]]}")
    assert all([r["status"] for r in rows[r_id]] == ["killed"] for r_id in run.values())
    assert status_json(workspace, daemon)["rows_added"] == []
    assert len(rows_of(workspace)) == 2


def test_a_stopped_daemon_is_one_clear_message(workspace, daemon):
    daemon.pueue("shutdown")
    daemon.proc.wait(timeout=30)
    proc = lab(workspace, "queue", "status", env={**daemon.env, "RUST_BACKTRACE": "1"})  # frames must not leak in
    assert proc.returncode == 1 and "daemon is not running" in proc.stderr and "pueued -d" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert ledger.read(workspace / "results.tsv")[0] == []
