"""`lab overnight` with trivial shell agents: every stop rule fires, crashes restart, waits run no agent, hooks.

Each test runs the real driver (`python -m lab.cli overnight`) in a temp workspace; the agents are one-line
shell commands (no model), and the rows some of them add are appended through lab.ledger the way eval.py
writes a crash row, standing in for runs. The SessionStart/Stop hooks run through lab/session_hook.sh with
real payloads. No training, no pueue daemon. Cost: 1-12 s per test (each runs the driver, whose summary
draws the plot), ~1.5-2.5 min for the file on 2 shared cores. Run: `just test tests/cli/test_overnight.py`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import git, lab_in_process, run_env

from lab import journal_format, ledger
from lab.loop import window

LAB = [sys.executable, "-m", "lab.cli"]
# Appends one row of status $1, wall time $2 (val_bpb $3, seed $4) to the root ledger, as eval.py would for a run: a stand-in for a run.
ROW = (f"{sys.executable} -c \"import sys; from pathlib import Path; from lab import jobs, ledger, runs; from lab.queue import queue; "
       "root = Path.cwd(); "
       "job = runs.provenance(root, root, jobs.new_run_id(), int((sys.argv[4:] or [0])[0]), 60, None, 'cpu') | {'task': None}; "
       "row = queue.row_for(job, sys.argv[1], 'stand-in row', wall_s=float(sys.argv[2])); "
       "ok = {'val_bpb': float((sys.argv[3:] or [2.5])[0]), 'train_s': 1.0, 'steps': 1, 'tokens': 1, 'params': 1, 'peak_mem_mb': 1.0}; "
       "ledger.append(row | ok if sys.argv[1] == 'ok' else row, ledger.ledger_path(root))\"")


def overnight(ws: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*LAB, "overnight", *args], cwd=ws, env=run_env(), capture_output=True, text=True,
                          timeout=timeout)


def night(ws: Path) -> dict:
    base = ws / window.DIR
    newest = sorted(p for p in base.iterdir() if (p / "night.json").exists())[-1]
    return json.loads((newest / "night.json").read_text())


def summary(ws: Path, n: dict) -> str:
    return (ws / n["summary"]).read_text()


def stopped_for(ws: Path, proc: subprocess.CompletedProcess, rule: str) -> dict:
    """The night ended by `rule`: the reason in its record, its stdout, the journal's newest entry and the summary."""
    assert proc.returncode == 0, proc.stdout + proc.stderr
    n = night(ws)
    assert n["stopped"].startswith(rule), n["stopped"]
    assert f"stopped: {n['stopped']}" in proc.stdout
    newest = journal_format.parse((ws / "RESEARCH_JOURNAL.md").read_bytes())[1][0].text.decode()
    assert f"overnight {n['id']}: stopped ({rule})" in newest and n["stopped"] in newest
    assert n["stopped"] in summary(ws, n)
    assert not window.is_open(window.read(ws))
    return n


def human_entry(ws: Path, text: str, when: datetime | None = None) -> None:
    """The human adds a dated entry on top of human_journal.md (what a person does in an editor)."""
    path = ws / "human_journal.md"
    old = path.read_text()
    cut = old.index("\n## ") + 1 if "\n## " in old else len(old)
    stamp = (when or datetime.now()).strftime("%Y-%m-%d %H:%M")
    path.write_text(old[:cut] + f"## {stamp}\n\n{text}\n\n" + old[cut:])


def test_deadline_and_what_each_cycle_gets(workspace):
    agent = 'cat > .cache/prompt-$LAB_OVERNIGHT_CYCLE.txt; echo "LAB_OVERNIGHT=$LAB_OVERNIGHT"; sleep 1'
    proc = overnight(workspace, "--agent", agent, "--hours", str(4 / 3600), "--stuck", "0")
    n = stopped_for(workspace, proc, "deadline")
    cycles = n["cycles"]
    assert len(cycles) >= 2 and all(c["kind"] == "agent" and c["outcome"] in ("ok", "deadline") for c in cycles)
    first = workspace / window.DIR / n["id"] / "cycle-001"
    prompt = (first / "prompt.txt").read_text()
    assert "Read program.md and follow it" in prompt and "# Digest" in prompt and "Next step (`lab next`): BASELINE" in prompt
    assert (workspace / ".cache" / "prompt-cycle-001.txt").read_text() == prompt  # on stdin, verbatim
    assert (first / "output.txt").read_text() == "LAB_OVERNIGHT=1\n"
    record = json.loads((first / "cycle.json").read_text())
    assert record["exit"] == 0 and record["start"] <= record["end"] and record["rows_added"] == []
    text = summary(workspace, n)
    assert f"{len(cycles)} agent" in text and "**Runs tonight:** 0" in text and "progress.png" in text


def test_max_cycles(workspace):
    proc = overnight(workspace, "--agent", "true", "--hours", "1", "--max-cycles", "2", "--stuck", "0")
    n = stopped_for(workspace, proc, "max cycles")
    assert [c["outcome"] for c in n["cycles"]] == ["ok", "ok"]


def test_stuck_cycles_stop_the_night(workspace):
    proc = overnight(workspace, "--agent", "true", "--hours", "1", "--stuck", "2")
    n = stopped_for(workspace, proc, "stuck")
    assert len(n["cycles"]) == 2 and all(c["progress"] == [] for c in n["cycles"])
    assert "cycles 1, 2" in n["stopped"]


def test_a_cycle_that_moves_something_is_not_stuck(workspace):
    # cycle 1 commits, cycle 2 adds a row, cycles 3-4 add nothing: stuck after 4, not after 2
    agent = ('c=${LAB_OVERNIGHT_CYCLE#cycle-}; '
             'if [ "$c" = 001 ]; then git commit -q --allow-empty -m progress; fi; '
             f'if [ "$c" = 002 ]; then {ROW} ok 1; fi')
    proc = overnight(workspace, "--agent", agent, "--hours", "1", "--stuck", "2", "--failures", "0")
    n = stopped_for(workspace, proc, "stuck")
    assert [c["progress"] for c in n["cycles"]] == [["1 commits"], ["1 rows"], [], []]
    assert len(n["cycles"][1]["rows_added"]) == 1


def test_crash_rows_in_a_row_stop_the_night(workspace):
    proc = overnight(workspace, "--agent", f"{ROW} crash 1", "--hours", "1", "--failures", "2")
    n = stopped_for(workspace, proc, "failures")
    rows, _ = ledger.read(workspace / "results.tsv")
    assert len(n["cycles"]) == 2 and [r["status"] for r in rows[-2:]] == ["crash", "crash"]
    assert all(r["run_id"] in n["stopped"] for r in rows[-2:])
    text = summary(workspace, n)
    assert "**Runs tonight:** 2 (2 crash)" in text
    assert all(f"run {r['run_id']} main seed 0: crash: stand-in row" in text for r in rows[-2:])


def test_an_ok_row_between_crashes_resets_the_count(workspace):
    agent = f'if [ "$LAB_OVERNIGHT_CYCLE" = cycle-002 ]; then {ROW} ok 1; else {ROW} invalid 1; fi'
    proc = overnight(workspace, "--agent", agent, "--hours", "1", "--failures", "2")
    n = stopped_for(workspace, proc, "failures")
    assert len(n["cycles"]) == 4  # invalid, ok, invalid, invalid


def test_gpu_hours_budget(workspace):
    proc = overnight(workspace, "--agent", f"{ROW} ok 1000", "--hours", "1", "--gpu-hours", "0.5")
    n = stopped_for(workspace, proc, "GPU hours")
    assert len(n["cycles"]) == 2 and "0.556 h" in n["stopped"]  # 2 runs x 1000 s


def test_a_crashed_agent_restarts_with_backoff(workspace):
    agent = 'if [ "$LAB_OVERNIGHT_CYCLE" = cycle-001 ]; then echo "segfault" >&2; exit 3; fi'
    proc = overnight(workspace, "--agent", agent, "--hours", "1", "--max-cycles", "2", "--stuck", "0",
                     "--backoff-s", "1.5")
    n = stopped_for(workspace, proc, "max cycles")
    first, second = n["cycles"]
    assert (first["outcome"], first["exit"], first["last_line"]) == ("crash", 3, "segfault")
    assert second["outcome"] == "ok"
    gap = datetime.fromisoformat(second["start"]) - datetime.fromisoformat(first["end"])
    assert gap >= timedelta(seconds=1), gap  # the backoff (timestamps are whole seconds)
    assert "restarting in 1.5 s" in proc.stdout
    assert "cycle 1 (BASELINE): agent crash, exit 3: segfault" in summary(workspace, n)


def test_a_usage_limit_backs_off_and_is_not_stuck(workspace):
    agent = ('if [ "$LAB_OVERNIGHT_CYCLE" != cycle-003 ]; then echo "Claude usage limit reached|1764633600" >&2; exit 1; fi')
    proc = overnight(workspace, "--agent", agent, "--hours", "1", "--stuck", "1", "--limit-backoff-s", "0.2")
    n = stopped_for(workspace, proc, "stuck")
    assert [c["outcome"] for c in n["cycles"]] == ["limit", "limit", "ok"]  # limits never count as stuck
    assert proc.stdout.count("usage limit (") == 2


def test_usage_reported_by_the_cli_lands_in_the_summary(workspace):
    result = {"type": "result", "subtype": "success", "is_error": False, "total_cost_usd": 0.25,
              "usage": {"input_tokens": 1200, "output_tokens": 300, "cache_read_input_tokens": 5000}}
    agent = f"echo '{json.dumps(result)}'"
    proc = overnight(workspace, "--agent", agent, "--hours", "1", "--max-cycles", "2", "--stuck", "0")
    n = stopped_for(workspace, proc, "max cycles")
    assert n["cycles"][0]["usage"] == {"input_tokens": 1200, "output_tokens": 300, "cache_read_input_tokens": 5000,
                                       "cost_usd": 0.25}
    text = summary(workspace, n)
    assert "$0.50" in text and "2,400 input tokens" in text and "600 output tokens" in text and "2 of 2 cycles" in text


def test_notes_are_committed_by_the_driver_and_a_failed_commit_goes_to_the_agent(workspace):
    three = f"{ROW} ok 1 2.50 0 && {ROW} ok 1 2.51 1 && {ROW} ok 1 2.52 2"  # the baseline's seeds, standing in
    agent = f'if [ "$LAB_OVERNIGHT_CYCLE" = cycle-001 ]; then {three}; fi'
    proc = overnight(workspace, "--agent", agent, "--hours", "1", "--max-cycles", "2", "--stuck", "0")
    n = stopped_for(workspace, proc, "max cycles")
    assert [(c["kind"], c["step"]) for c in n["cycles"]] == [("agent", "BASELINE"), ("chore", "NOTES"), ("agent", "IDEATE")]
    assert n["cycles"][1]["agent"] is None and n["cycles"][1]["progress"] == ["1 commits"]
    assert "results.tsv" not in git("status", "--porcelain", cwd=workspace)
    assert "1 notes commits by the driver" in summary(workspace, n)
    status = subprocess.run([*LAB, "status"], cwd=workspace, env=run_env(), capture_output=True, text=True).stdout
    assert f"overnight: {n['summary']} (night {n['id']}, stopped: max cycles" in status  # `lab status` points to it

    hook = workspace / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho 'pre-commit: refused' >&2\nexit 1\n")
    hook.chmod(0o755)
    # the first night's journal entry and summary are notes too: the next night starts by committing them
    proc = overnight(workspace, "--agent", "true", "--hours", "1", "--max-cycles", "1", "--stuck", "0")
    n = stopped_for(workspace, proc, "max cycles")
    assert [(c["kind"], c["step"]) for c in n["cycles"]] == [("chore", "NOTES"), ("agent", "NOTES")]
    assert n["cycles"][0]["outcome"] == "failed" and "pre-commit: refused" in n["cycles"][0]["said"]
    assert "(1 failed, handed to the agent)" in summary(workspace, n)
    assert "cycle 1 (NOTES): the driver's `git add results.tsv" in summary(workspace, n)


def test_codex_jsonl_usage_is_summed():
    from lab.loop.overnight import usage_of

    events = ['{"type":"thread.started","thread_id":"t"}', "plain text",
              '{"type":"turn.completed","usage":{"input_tokens":10,"cached_input_tokens":4,"output_tokens":2}}',
              '{"type":"turn.completed","usage":{"input_tokens":5,"cached_input_tokens":0,"output_tokens":1}}']
    assert usage_of("\n".join(events)) == {"input_tokens": 15, "cached_input_tokens": 4, "output_tokens": 3}


def test_stop_directive_is_honoured_within_one_cycle(workspace):
    proc = subprocess.Popen([*LAB, "overnight", "--agent", "sleep 1", "--hours", "1", "--stuck", "0"], cwd=workspace,
                            env=run_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = workspace / window.DIR
        for _ in range(300):
            if list(base.glob("*/cycle-002")):
                break
            time.sleep(0.1)
        human_entry(workspace, "STOP: enough for tonight")
        started = len(list(base.glob("*/cycle-*")))
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    n = night(workspace)
    assert n["stopped"] == "human: STOP in the human_journal.md entry '" + n["stopped"].split("'")[1] + "': enough for tonight"
    assert len(n["cycles"]) <= started  # the cycle running when STOP landed was the last one
    assert n["stopped"] in summary(workspace, n) and proc.returncode == 0, out + err


def test_a_killed_driver_takes_its_agent_and_still_writes_the_summary(workspace):
    proc = subprocess.Popen([*LAB, "overnight", "--agent", "echo $$ > .cache/agent.pid; exec sleep 120", "--hours", "1"],
                            cwd=workspace, env=run_env(), stdout=subprocess.PIPE, text=True)
    pid_file = workspace / ".cache" / "agent.pid"
    for _ in range(300):
        if pid_file.exists() and pid_file.read_text().strip():
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    n = night(workspace)
    assert proc.returncode == 0 and n["stopped"].startswith("interrupted") and n["stopped"] in summary(workspace, n)
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)  # the agent went with the driver
    assert not window.is_open(window.read(workspace))


def test_an_agent_that_forges_the_window_does_not_extend_the_night(workspace):
    """The agent rewrites window.json and night.json (a far deadline, no cycles): the driver keeps its own."""
    forge = (f"{sys.executable} -c \"import json, pathlib; base = pathlib.Path('.cache/overnight'); "
             "w = json.loads((base / 'window.json').read_text()); w['deadline'] = '2099-01-01T00:00:00'; "
             "(base / 'window.json').write_text(json.dumps(w)); night = base / w['night'] / 'night.json'; "
             "n = json.loads(night.read_text()); n['cycles'] = []; n['deadline'] = '2099-01-01T00:00:00'; "
             "night.write_text(json.dumps(n))\"")
    proc = overnight(workspace, "--agent", forge, "--hours", str(3 / 3600), "--stuck", "0")
    n = stopped_for(workspace, proc, "deadline")
    assert n["deadline"] != "2099-01-01T00:00:00" and len(n["cycles"]) >= 1  # rewritten from the driver's memory
    assert json.loads((workspace / window.WINDOW).read_text())["stopped"] == n["stopped"]
    denied = subprocess.run([str(workspace / "lab" / "hook.sh"), "claude"], cwd=workspace, env=run_env(), text=True,
                            capture_output=True, input=json.dumps({"tool_name": "Write", "cwd": str(workspace),
                                                                   "tool_input": {"file_path": window.WINDOW,
                                                                                  "content": "{}"}}))
    assert denied.returncode == 2 and "record the tools keep" in denied.stderr  # the guard hook says no first


def test_stop_written_before_the_night_is_not_a_directive(workspace):
    human_entry(workspace, "STOP", when=datetime.now() - timedelta(hours=1))
    git("commit", "-qam", "an old STOP", cwd=workspace)
    proc = overnight(workspace, "--agent", "true", "--hours", "1", "--max-cycles", "1", "--stuck", "0")
    stopped_for(workspace, proc, "max cycles")


def during_night(ws: Path, text: str, *args: str) -> tuple[dict, str, datetime]:
    """Start a night, add a human_journal.md entry once it runs, wait for the night's end."""
    proc = subprocess.Popen([*LAB, "overnight", *args], cwd=ws, env=run_env(), stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(300):
            if window.is_open(window.read(ws)):
                break
            time.sleep(0.05)
        human_entry(ws, text)
        written = datetime.now().replace(microsecond=0)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    return night(ws), out, written


def test_pause_holds_the_agent_and_a_bad_pause_stops(workspace):
    pause = f"PAUSE until {(datetime.now() + timedelta(hours=2)):%Y-%m-%d %H:%M}"
    n, out, written = during_night(workspace, pause, "--agent", "sleep 0.3", "--hours", str(4 / 3600), "--stuck", "0",
                                   "--poll-s", "0.5")
    assert n["stopped"].startswith("deadline") and "paused: PAUSE until" in out
    assert len([c for c in n["cycles"] if datetime.fromisoformat(c["start"]) > written]) <= 1  # the one running then

    n, out, _ = during_night(workspace, "PAUSE until 25:00", "--agent", "sleep 0.3", "--hours", "1", "--stuck", "0")
    assert n["stopped"].startswith("human") and "'PAUSE until 25:00' is not `PAUSE until HH:MM`" in n["stopped"]
    assert n["stopped"] in summary(workspace, n)


def test_directives_pure(tmp_path):
    (tmp_path / "human_journal.md").write_text("# h\n\n## 2026-12-01 23:00\n\nPAUSE until 02:30\n\n## 2026-12-01 20:00\n\nold\n")
    d = window.directive(tmp_path, 1, now=datetime(2026, 12, 2, 1, 0))
    assert d.kind == "pause" and d.until == datetime(2026, 12, 2, 2, 30)  # the next 02:30 after the entry
    assert window.directive(tmp_path, 1, now=datetime(2026, 12, 2, 3, 0)).kind is None  # the pause is over
    assert window.directive(tmp_path, 2, now=datetime(2026, 12, 2, 1, 0)).kind is None  # written before the night


def test_waits_run_no_agent(workspace):
    """Only runs in flight remain (three baseline evals alive): the driver waits and starts no agent."""
    pyproject = workspace / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("ideas_waiting = 30", "ideas_waiting = 0"))
    git("commit", "-qam", "no ideas wanted", cwd=workspace)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from lab import jobs, runs\n"
        "root = Path.cwd()\n"
        "for seed in range(3):\n"
        "    rid = jobs.new_run_id(); jobs.hold_run_lock(root, rid)\n"
        "    jobs.write_running(root, runs.provenance(root, root, rid, seed, 60, None, 'cpu'))\n"
        "print('held', flush=True); time.sleep(120)")], cwd=workspace, env=run_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        step = json.loads(subprocess.run([*LAB, "next", "--json"], cwd=workspace, env=run_env(), capture_output=True,
                                         text=True).stdout)
        assert step["kind"] == "WAIT" and step["command"] is None
        proc = overnight(workspace, "--agent", "touch .cache/agent-ran", "--hours", str(3 / 3600), "--poll-s", "1")
    finally:
        holder.kill()
    n = stopped_for(workspace, proc, "deadline")
    assert n["cycles"] and all(c["kind"] == "wait" and c["agent"] is None and c["step"] == "WAIT" for c in n["cycles"])
    assert not (workspace / ".cache" / "agent-ran").exists()
    assert not list((workspace / window.DIR / n["id"]).glob("cycle-*/prompt.txt"))  # no agent process, no prompt
    assert "0 agent (none)" in summary(workspace, n) and "waits on the queue with no agent running" in summary(workspace, n)


def test_bad_options_say_what_to_fix(workspace):
    """In-process: each is refused before `overnight` installs its SIGTERM handler, so pytest keeps its own."""
    handler = signal.getsignal(signal.SIGTERM)
    for args, message in [(["--agent", "true"], "give exactly one of --until HH:MM and --hours H"),
                          (["--agent", "true", "--until", "7pm"], "--until '7pm': write the local time as HH:MM"),
                          (["--until", "07:00"], "--agent is required"),
                          (["--agent", "true", "--hours", "1", "--stuck", "-1"], "--stuck -1: give a whole number"),
                          (["--agent", "true", "--hours", "1", "--gpu-hours", "0"], "--gpu-hours 0.0: give a positive")]:
        proc = lab_in_process("overnight", *args, cwd=workspace)
        assert proc.returncode == 1 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert signal.getsignal(signal.SIGTERM) is handler
    assert not (workspace / window.DIR).exists()  # nothing half-written


def test_presets_expand():
    from lab.loop import overnight as core

    assert core.expand("claude").startswith("claude -p --output-format json")
    assert core.expand("codex") == "codex exec --json --sandbox danger-full-access -"
    assert core.expand("./my-agent --fast") == "./my-agent --fast"


# ---------------------------------------------------------------- the hooks

HOOK = "lab/session_hook.sh"


def hook(ws: Path, event: str, cli: str, payload: dict) -> subprocess.CompletedProcess:
    return subprocess.run([str(ws / HOOK), event, cli], input=json.dumps(payload), cwd=ws, env=run_env(),
                          capture_output=True, text=True, timeout=60)


def stop_payload(ws: Path, active: bool = False) -> dict:
    return {"session_id": "s", "transcript_path": None, "cwd": str(ws), "hook_event_name": "Stop", "model": "m",
            "permission_mode": "default", "stop_hook_active": active, "turn_id": "t", "last_assistant_message": "done"}


def open_window(ws: Path, minutes: float = 30, pid: int | None = None, stopped: str | None = None) -> None:
    path = ws / window.WINDOW
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = (datetime.now() + timedelta(minutes=minutes)).strftime(window.TIME)
    path.write_text(json.dumps({"night": "n", "pid": pid or os.getpid(), "deadline": deadline, "stopped": stopped,
                                "journal_entries_at_start": window.entry_count(ws)}))


def test_session_start_gives_the_digest(workspace):
    for cli in ("claude", "codex"):
        proc = hook(workspace, "session-start", cli, {"session_id": "s", "transcript_path": None, "cwd": str(workspace),
                                                      "hook_event_name": "SessionStart", "model": "m",
                                                      "permission_mode": "default", "source": "compact"})
        out = json.loads(proc.stdout)
        assert proc.returncode == 0 and out["hookSpecificOutput"]["hookEventName"] == "SessionStart"
        context = out["hookSpecificOutput"]["additionalContext"].splitlines()
        assert context[0].startswith("UNPROTECTED: ") and context[1] == "# Digest"  # lab digest: the mode first


def test_stop_blocks_only_while_a_window_is_open(workspace):
    assert hook(workspace, "stop", "claude", stop_payload(workspace)).stdout == ""  # no night: stop
    open_window(workspace)
    proc = hook(workspace, "stop", "claude", stop_payload(workspace))
    out = json.loads(proc.stdout)
    assert proc.returncode == 0 and out["decision"] == "block" and "Next step (`lab next`): BASELINE" in out["reason"]
    assert hook(workspace, "stop", "codex", stop_payload(workspace, active=True)).stdout == ""  # the loop guard
    human_entry(workspace, "STOP")
    assert hook(workspace, "stop", "codex", stop_payload(workspace)).stdout == ""  # the human's STOP
    open_window(workspace, stopped="stuck: …")
    assert hook(workspace, "stop", "claude", stop_payload(workspace)).stdout == ""  # a stop rule fired
    open_window(workspace, minutes=-1)
    assert hook(workspace, "stop", "claude", stop_payload(workspace)).stdout == ""  # past the deadline
    dead = subprocess.Popen(["true"])
    dead.wait()
    open_window(workspace, pid=dead.pid)
    assert hook(workspace, "stop", "claude", stop_payload(workspace)).stdout == ""  # the driver is gone


def test_a_broken_hook_lets_the_session_stop(workspace):
    open_window(workspace)
    for bad in ("not json", json.dumps({"cwd": "/nonexistent/place"})):
        proc = subprocess.run([str(workspace / HOOK), "stop", "claude"], input=bad, cwd=workspace, env=run_env(),
                              capture_output=True, text=True)
        assert (proc.returncode, proc.stdout) == (0, "")
    (workspace / "pyproject.toml").write_text("broken")  # `lab next` itself fails
    proc = hook(workspace, "stop", "claude", stop_payload(workspace))
    assert (proc.returncode, proc.stdout) == (0, "")
