"""The queue against a live pueue daemon: add, wait, rows land, kill → killed row, two slots → two workers.

Each test starts a private `pueued` (own config, data and socket in a temp dir, reached through
PUEUE_CONFIG_PATH) and shuts it down after. They run only where `pueue` and `pueued` are on PATH;
elsewhere they are skipped with the reason, and tests/test_queue.py covers what needs no daemon.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import run_env
from lab import ledger
from test_queue import H, Q, just, lab, rows_of, started

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (shutil.which("pueue") and shutil.which("pueued")),
                       reason="pueue/pueued not on PATH: live queue tests need a real pueue "
                              "(cargo install --locked pueue); the fixture-based tests still ran"),
]


@pytest.fixture
def daemon():
    """A private pueued; yields the environment that reaches it (PUEUE_CONFIG_PATH)."""
    home = Path(tempfile.mkdtemp(prefix="pq-"))  # short: the socket path must fit in 108 bytes
    config = home / "pueue.yml"
    config.write_text(
        f"shared:\n  pueue_directory: {home}/data\n  runtime_directory: {home}/run\n  use_unix_socket: true\n"
        f"  unix_socket_path: {home}/run/pueue.socket\nclient:\n  show_confirmation_questions: false\n"
        "daemon:\n  pause_group_on_failure: false\n  pause_all_on_failure: false\n")
    env = run_env(PUEUE_CONFIG_PATH=str(config))
    subprocess.run(["pueued", "--daemonize"], env=env, check=True, capture_output=True, timeout=30)
    for _ in range(100):
        if subprocess.run(["pueue", "status", "--json"], env=env, capture_output=True).returncode == 0:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"private pueued did not answer within 10 s (config {config})")
    yield env
    subprocess.run(["pueue", "shutdown"], env=env, capture_output=True, timeout=30)
    shutil.rmtree(home, ignore_errors=True)


def pueue_tasks(env: dict) -> dict:
    out = subprocess.run(["pueue", "status", "--json"], env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out)["tasks"]


def queued_ids(stdout: str) -> list[int]:
    return [int(line.split()[1].rstrip(":")) for line in stdout.splitlines() if line.startswith("task ")]


def test_jobs_run_on_two_slots_and_their_rows_name_their_tasks(workspace, corpus, daemon):
    tree = started(workspace)
    just(tree, "smoke", "--source", str(corpus), "--budget-s", "1")
    setup = lab(workspace, "setup", "--slots", "2", env=daemon)
    assert setup.returncode == 0 and "2 slot(s)" in setup.stdout, setup.stderr

    add = lab(tree, "queue", "lower-lr", "--q", Q, "--h", H, "--seeds", "2", "--",
              "--source", str(corpus), "--max-steps", "2", env=daemon)
    assert add.returncode == 0, add.stderr
    ids = queued_ids(add.stdout)
    assert len(ids) == 2
    raw = pueue_tasks(daemon)
    assert all(raw[str(i)]["label"] == f"Q: {Q} H: {H}" and raw[str(i)]["group"] == "lab" for i in ids)

    waited = lab(workspace, "wait", "--timeout", "900", env=daemon)
    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert sum("ok val_bpb" in line for line in waited.stdout.splitlines()) == 2

    raw = pueue_tasks(daemon)
    by_task = {r["pueue_task"]: r for r in rows_of(workspace)}
    for i in ids:
        assert by_task[str(i)]["run_id"] == raw[str(i)]["envs"]["LAB_RUN_ID"]
        assert by_task[str(i)]["status"] == "ok" and by_task[str(i)]["predicted_delta"] == "-0.02"
    assert {raw[str(i)]["envs"]["PUEUE_WORKER_ID"] for i in ids} == {"0", "1"}

    watch = json.loads(lab(workspace, "queue", "status", "--json", env=daemon).stdout)
    assert sorted(j["task"] for j in watch["jobs"]) == sorted(ids) and watch["rows_added"] == []


def test_a_killed_job_gets_exactly_one_killed_row(workspace, corpus, daemon):
    tree = started(workspace)
    just(tree, "smoke", "--source", str(corpus), "--budget-s", "1")
    assert lab(workspace, "setup", env=daemon).returncode == 0
    add = lab(tree, "queue", "lower-lr", "--q", Q, "--h", H, "--", "--source", str(corpus), "--budget-s", "600",
              env=daemon)
    assert add.returncode == 0, add.stderr
    (task,) = queued_ids(add.stdout)
    for _ in range(300):
        if "Running" in pueue_tasks(daemon)[str(task)]["status"]:
            break
        time.sleep(0.2)
    time.sleep(5)  # let eval.py start training
    subprocess.run(["pueue", "kill", str(task)], env=daemon, check=True, capture_output=True)

    waited = lab(workspace, "wait", str(task), "--timeout", "120", env=daemon)
    assert waited.returncode == 1 and "killed" in waited.stdout, waited.stdout + waited.stderr
    run_id = pueue_tasks(daemon)[str(task)]["envs"]["LAB_RUN_ID"]
    rows = [r for r in rows_of(workspace) if r["run_id"] == run_id]
    assert len(rows) == 1 and rows[0]["status"] == "killed" and rows[0]["pueue_task"] == str(task)
    before = (workspace / "results.tsv").read_bytes()
    assert lab(workspace, "queue", "status", env=daemon).returncode == 0
    assert (workspace / "results.tsv").read_bytes() == before


def test_a_stopped_daemon_is_one_clear_message(workspace, daemon):
    subprocess.run(["pueue", "shutdown"], env=daemon, check=True, capture_output=True)
    time.sleep(1)
    proc = lab(workspace, "queue", "status", env=daemon)
    assert proc.returncode == 1 and "daemon is not running" in proc.stderr and "pueued -d" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert ledger.read(workspace / "results.tsv")[0] == []
