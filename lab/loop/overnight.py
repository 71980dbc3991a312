"""The overnight driver: runs the agent CLI in cycles until a stop rule fires, then writes the morning summary.

Each cycle asks `lab next` for the step. WAIT (only queued runs remain): the driver waits on the
queue itself (`lab wait`), no agent runs; NOTES (commit the ledger rows that landed): the driver runs
its one command itself. Anything else: the agent command runs through the shell
in the root checkout with the cycle's prompt on stdin and LAB_OVERNIGHT=1. A crash restarts with
backoff; a usage limit the CLI reports backs off longer and retries. Stop rules, checked before
every cycle and during every wait: deadline, max cycles, stuck cycles, crash/invalid rows in a row,
a human STOP (PAUSE holds), GPU hours. Every cycle is on disk under .cache/overnight/NIGHT/.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from lab import files, gitx, jobs, journal_format, ledger, names, procs, runs
from lab.loop import journal, status, window

# Headless invocations, flags as each CLI's own --help spells them (tests/cli/test_agent_clis.py holds them to it).
# claude: the prompt from stdin, one JSON result (tokens, cost) on stdout; tools allowed without asking
# (--dangerously-skip-permissions is refused as root); the PreToolUse guard hook still runs on every call.
# codex: `-` reads the prompt from stdin, --json prints JSONL events (usage per turn); full access because
# its workspace sandbox blocks pueue's socket and the root checkout's .cache/ from a worktree.
PRESETS = {
    "claude": "claude -p --output-format json --permission-mode acceptEdits "
              "--allowedTools Bash Edit Write Read Glob Grep",
    "codex": "codex exec --json --sandbox danger-full-access -",
}
# The CLI releases the contracts are tested against (tests/cli/test_agent_clis.py); .ci/run installs these.
TESTED_CLIS = {"@anthropic-ai/claude-code": "2.1.328", "@openai/codex": "0.169.0"}
LIMIT = re.compile(r"usage limit|rate limit|rate_limit|quota|too many requests|\b429\b|limit reached|try again at",
                   re.IGNORECASE)
# What a CLI prints when it runs without the project's hooks (the guard's layer 1): the summary says so.
HOOKS_OFF = re.compile(r"Untrusted project-local configuration is disabled")
FAILED_ROWS = ("crash", "invalid")
# Steps the driver runs itself: committing the ledger rows that land while runs are in flight would
# otherwise start an agent session per row.
CHORES = ("NOTES",)
REPORT_SUFFIX = "_overnight.md"


@dataclass
class Config:
    """The night's knobs; `lab overnight --help` documents each."""

    agent: str  # the shell command (a preset already expanded)
    deadline: datetime  # local time
    max_cycles: int | None = None  # agent cycles (waits do not count)
    stuck: int = 3  # agent cycles in a row with no new row, queued run, commit, idea, report or journal entry
    failures: int = 3  # crash/invalid rows in a row among the night's rows
    gpu_hours: float | None = None  # wall hours of the night's runs (each holds one GPU slot for its wall time)
    backoff_s: float = 30.0  # first restart delay after an agent crash; doubles, up to backoff_max_s
    backoff_max_s: float = 900.0
    limit_backoff_s: float = 900.0  # after a usage limit; doubles, up to 4x
    poll_s: float = 60.0  # a wait or pause re-checks STOP and the deadline this often


@dataclass
class Night:
    """What the driver keeps while a night runs; written to night.json after every cycle."""

    id: str
    started: str
    deadline: str
    agent: str
    rows_at_start: int
    journal_entries_at_start: int
    config: dict
    cycles: list[dict] = field(default_factory=list)
    stopped: str | None = None
    ended: str | None = None
    summary: str | None = None


def expand(agent: str) -> str:
    """A preset's real invocation, or the command as given."""
    return PRESETS.get(agent.strip(), agent)


def deadline_of(until: str | None, hours: float | None, now: datetime | None = None) -> datetime:
    """`--until HH:MM` (the next such time) or `--hours H`; ValueError naming the value otherwise."""
    now = now or datetime.now()
    if (until is None) == (hours is None):
        raise ValueError("give exactly one of --until HH:MM and --hours H (the night needs a deadline)")
    if hours is not None:
        if not hours > 0:
            raise ValueError(f"--hours {hours}: give a positive number of hours")
        return now + timedelta(hours=hours)
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", until.strip())
    if not m or int(m[1]) > 23 or int(m[2]) > 59:
        raise ValueError(f"--until {until!r}: write the local time as HH:MM, e.g. --until 07:30")
    end = now.replace(hour=int(m[1]), minute=int(m[2]), second=0, microsecond=0)
    return end if end > now else end + timedelta(days=1)


def night_dir(root: Path, night_id: str) -> Path:
    return Path(root) / window.DIR / night_id


def _stamp(moment: datetime) -> str:
    return moment.strftime(window.TIME)


def _write(path: Path, data: bytes) -> None:
    """Atomically, whether or not `path` exists yet."""
    path.parent.mkdir(parents=True, exist_ok=True)
    (files.replace if path.exists() else files.write_new)(path, data)


def _save(root: Path, night: Night, pid: int | None = None) -> None:
    data = json.dumps(asdict(night), indent=1).encode()
    _write(night_dir(root, night.id) / "night.json", data)
    record = {"night": night.id, "pid": pid or os.getpid(), "deadline": night.deadline, "stopped": night.stopped,
              "journal_entries_at_start": night.journal_entries_at_start}
    _write(Path(root) / window.WINDOW, json.dumps(record).encode())


def load(root: Path, night_id: str | None = None) -> Night:
    """A night from its night.json: the named one, or the newest."""
    base = Path(root) / window.DIR
    if night_id is None:
        nights = sorted(p.name for p in base.glob("*") if (p / "night.json").exists()) if base.exists() else []
        if not nights:
            raise ValueError(f"no night under {base}: start one with `lab overnight --agent CMD --until HH:MM`")
        night_id = nights[-1]
    path = base / night_id / "night.json"
    try:
        return Night(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError) as e:
        raise ValueError(f"{path}: cannot be read as a night ({e})") from None


# ---------------------------------------------------------------- what a cycle changed

def snapshot(root: Path) -> dict:
    """The counts a cycle must move to count as progress: rows, queued runs, commits, ideas, reports, journal entries."""
    rows, _ = ledger.read(ledger.ledger_path(root))
    commits = int(gitx.git("rev-list", "--all", "--count", cwd=root).strip() or 0)
    idea_files = {p.name: p.stat().st_mtime_ns for p in (root / "1_ideas").glob("*.md")}
    report_files = [p.name for p in (root / "9_reports").glob("*.md")
                    if not p.name.startswith("_") and not p.name.endswith(REPORT_SUFFIX)]
    entries = len(journal_format.parse((root / journal_format.RESEARCH).read_bytes())[1])
    return {"rows": len(rows), "queued": len(jobs.records(root)), "commits": commits, "ideas": sorted(idea_files.items()),
            "reports": len(report_files), "journal": entries}


def progress(before: dict, after: dict) -> list[str]:
    """What moved between two snapshots, as words ("2 rows", "1 commit", "ideas"); empty: nothing."""
    moved = [f"{after[k] - before[k]} {k}" for k in ("rows", "queued", "commits", "reports", "journal")
             if after[k] > before[k]]  # a queue record goes when its row lands: fewer is not progress
    return moved + (["ideas"] if after["ideas"] != before["ideas"] else [])


def night_rows(root: Path, night: Night) -> list[dict]:
    rows, _ = ledger.read(ledger.ledger_path(root))
    return rows[night.rows_at_start:]


# ---------------------------------------------------------------- stop rules

def stop_reason(root: Path, night: Night, cfg: Config, now: datetime | None = None) -> str | None:
    """The first stop rule that fires now, as the line the journal and the summary show; None: go on."""
    now = now or datetime.now()
    if now >= cfg.deadline:
        return f"deadline: the window ended at {cfg.deadline:{journal_format.STAMP}}"
    d = window.directive(root, night.journal_entries_at_start, now)
    if d.kind == "stop":
        return f"human: {d.why}"
    agents = [c for c in night.cycles if c["kind"] == "agent"]
    if cfg.max_cycles is not None and len(agents) >= cfg.max_cycles:
        return f"max cycles: {len(agents)} agent cycles ran (--max-cycles {cfg.max_cycles})"
    counted = [c for c in agents if c["outcome"] != "limit"]  # waiting out a usage limit is not being stuck
    tail = counted[-cfg.stuck:] if cfg.stuck else []
    if cfg.stuck and len(tail) == cfg.stuck and not any(c["progress"] for c in tail):
        return (f"stuck: {cfg.stuck} agent cycles in a row (cycles {', '.join(str(c['n']) for c in tail)}) added no row, "
                f"queued run, commit, idea, report or journal entry (--stuck {cfg.stuck})")
    rows = night_rows(root, night)
    if cfg.failures and len(rows) >= cfg.failures and all(r["status"] in FAILED_ROWS for r in rows[-cfg.failures:]):
        last = rows[-cfg.failures:]
        return (f"failures: the night's last {cfg.failures} rows are crash/invalid "
                f"({', '.join(r['run_id'] + ' ' + r['status'] for r in last)}; --failures {cfg.failures})")
    if cfg.gpu_hours is not None:
        used = sum(float(r["wall_s"] or 0) for r in rows) / 3600
        if used >= cfg.gpu_hours:
            return f"GPU hours: the night's {len(rows)} runs used {used:.3f} h of wall time (--gpu-hours {cfg.gpu_hours:g})"
    return None


# ---------------------------------------------------------------- one cycle

def prompt_for(root: Path, step: dict, cfg: Config) -> str:
    """The cycle's prompt: the pointer to program.md, the digest, and `lab next`'s step."""
    command = f"\n  $ {step['command']}" if step.get("command") else ""
    return (f"You are the research agent of this workspace, in an overnight window until {cfg.deadline:%H:%M} "
            "(LAB_OVERNIGHT=1). Read program.md and follow it: do the next step below, then keep going with "
            "`lab next` until it says WAIT (then end your turn: the driver waits on the queue itself) or the window "
            "ends. The human reads the journal and results.tsv in the morning.\n\n"
            f"{status.digest(root)}\n"
            f"Next step (`lab next`): {step['kind']}: {step['say']}{command}\n")


def next_step(root: Path) -> dict:
    return status.summarize(root).step


def usage_of(output: str) -> dict:
    """Tokens and cost as the CLI reported them: claude's one JSON result, codex's JSONL turn events; {} if none."""
    events = events_of(output)
    found: dict[str, float] = {}
    for event in events:
        usage = event.get("usage")
        for k, v in (usage.items() if isinstance(usage, dict) else ()):
            if k.endswith("_tokens") and isinstance(v, (int, float)):
                found[k] = found.get(k, 0) + v
        if isinstance(event.get("total_cost_usd"), (int, float)):
            found["cost_usd"] = found.get("cost_usd", 0) + event["total_cost_usd"]
    return found


def run_agent(root: Path, cfg: Config, prompt: str, where: Path, timeout: float) -> dict:
    """Run the agent command once in `root` with `prompt` on stdin; its stdout/stderr land in `where`."""
    env = {**os.environ, "LAB_OVERNIGHT": "1", "LAB_OVERNIGHT_CYCLE": where.name}
    (where / "prompt.txt").write_text(prompt)
    began = time.monotonic()
    with open(where / "output.txt", "wb") as out, open(where / "stderr.txt", "wb") as err:
        proc = subprocess.Popen(["bash", "-c", cfg.agent], cwd=root, stdin=subprocess.PIPE, stdout=out, stderr=err,
                                env=env, start_new_session=True)
        try:
            try:
                proc.stdin.write(prompt.encode())
                proc.stdin.close()
            except BrokenPipeError:
                pass  # an agent that exits without reading its prompt: its exit status says the rest
            code, timed_out = proc.wait(timeout=max(1.0, timeout)), False
        except subprocess.TimeoutExpired:
            procs.kill_tree(proc.pid)
            code, timed_out = proc.wait(), True
        except BaseException:  # the driver is interrupted: the agent goes with it (reaped, not left a zombie)
            procs.kill_tree(proc.pid)
            proc.wait(timeout=30)
            raise
    output = (where / "output.txt").read_text(errors="replace")
    errors = (where / "stderr.txt").read_text(errors="replace")
    said = said_of(output)
    if timed_out:
        outcome = "deadline"
    elif code != 0 and (LIMIT.search(errors[-4000:]) or LIMIT.search(said[-4000:])):
        outcome = "limit"
    else:
        outcome = "ok" if code == 0 else "crash"
    last = (errors.strip() or said.strip()).splitlines()[-1:] or [""]
    warnings = ["the CLI ran without the project's hooks: it does not trust this checkout (for codex: "
                "trust the project and its hooks once, interactively)"] if HOOKS_OFF.search(errors) else []
    return {"exit": code, "outcome": outcome, "wall_s": round(time.monotonic() - began, 1), "usage": usage_of(output),
            "last_line": last[0][:300], "warnings": warnings}


def events_of(output: str) -> list[dict]:
    """The CLI's JSON output as objects: claude's one result, or codex's JSONL events (other lines skipped)."""
    try:
        found = [json.loads(output)]
    except ValueError:
        found = []
        for line in output.splitlines():
            try:
                found.append(json.loads(line))
            except ValueError:
                continue  # a CLI's plain text between events
    return [e for e in found if isinstance(e, dict)]


def said_of(output: str) -> str:
    """What the CLI said, for the log and the limit check: claude's `result`, codex's error messages, else the text."""
    events = events_of(output)
    texts = [e["result"] for e in events if isinstance(e.get("result"), str)]
    texts += [e["message"] for e in events if e.get("type") == "error" and isinstance(e.get("message"), str)]
    texts += [e["error"]["message"] for e in events if isinstance(e.get("error"), dict)
              and isinstance(e["error"].get("message"), str)]
    return "\n".join(texts) if events else output


def wait_on_queue(root: Path, step: dict, seconds: float) -> dict:
    """WAIT: `lab wait` on the queue (pueue wait) for at most `seconds`, no agent; live evals: sleep."""
    began = time.monotonic()
    if step.get("command") == "lab wait":
        proc = subprocess.run([sys.executable, "-m", "lab.cli", "wait", "--timeout", f"{max(1.0, seconds):.0f}"],
                              cwd=root, capture_output=True, text=True)
        ran, code, said = "lab wait", proc.returncode, (proc.stdout + proc.stderr).strip()
    else:
        time.sleep(max(0.0, seconds))
        ran, code, said = "sleep (evals running outside the queue)", 0, ""
    return {"ran": ran, "exit": code, "wall_s": round(time.monotonic() - began, 1), "said": said[-2000:]}


def run_chore(root: Path, command: str) -> dict:
    """A CHORES step: `lab next`'s one shell line, run by the driver (no judgment in it, so no model tokens)."""
    began = time.monotonic()
    proc = subprocess.run(["bash", "-c", command], cwd=root, capture_output=True, text=True, timeout=300)
    return {"ran": command, "exit": proc.returncode, "outcome": "ok" if proc.returncode == 0 else "failed",
            "wall_s": round(time.monotonic() - began, 1), "said": (proc.stdout + proc.stderr).strip()[-2000:]}


def sleep_unless_stopped(root: Path, night: Night, cfg: Config, seconds: float) -> str | None:
    """Sleep up to `seconds`, waking every poll_s to check the stop rules; returns the reason if one fired."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        reason = stop_reason(root, night, cfg)
        if reason:
            return reason
        time.sleep(min(left, cfg.poll_s, max(0.0, (cfg.deadline - datetime.now()).total_seconds()) + 0.05))
    return None


def start(root: Path, cfg: Config, now: datetime | None = None) -> Night:
    """Open a night: its directory, its record, the window file the hooks read."""
    now = now or datetime.now()
    record = window.read(root)
    if window.is_open(record):
        raise ValueError(f"a night is already running here (driver pid {record['pid']}, until {record['deadline']}): "
                         f"one driver per checkout")
    if gitx.branch(root) != names.MAIN:
        raise ValueError(f"{root} is on branch {gitx.branch(root)!r}: start the night in the root checkout on main")
    night_id = now.strftime("%Y%m%d-%H%M%S")
    night_dir(root, night_id).mkdir(parents=True, exist_ok=False)
    rows, _ = ledger.read(ledger.ledger_path(root))
    config = {k: (v.strftime(window.TIME) if isinstance(v, datetime) else v) for k, v in asdict(cfg).items()}
    night = Night(id=night_id, started=_stamp(now), deadline=_stamp(cfg.deadline), agent=cfg.agent,
                  rows_at_start=len(rows), journal_entries_at_start=window.entry_count(root), config=config)
    _save(root, night)
    return night


def drive(root: Path, cfg: Config, say=print) -> Night:
    """Run one night to its end; returns it with its stop reason and the path of its summary."""
    root = Path(root)
    night = start(root, cfg)
    say(f"lab overnight: night {night.id} until {cfg.deadline:{journal_format.STAMP}}, agent: {cfg.agent}")
    try:
        reason = _cycles(root, night, cfg, say)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (the command turns it into this)
        reason = "interrupted: the driver was stopped from outside (Ctrl-C or a signal)"
    return finish(root, night, reason, say)


def _cycles(root: Path, night: Night, cfg: Config, say) -> str:
    """The cycles of one night until a stop rule fires; returns its reason."""
    crashes, limits, chore_failed = 0, 0, False
    reason = None
    while reason is None:
        reason = stop_reason(root, night, cfg)
        if reason:
            break
        d = window.directive(root, night.journal_entries_at_start)
        if d.kind == "pause":
            say(f"lab overnight: paused: {d.why}")
            reason = sleep_unless_stopped(root, night, cfg, (d.until - datetime.now()).total_seconds())
            continue
        n = len(night.cycles) + 1
        where = night_dir(root, night.id) / f"cycle-{n:03d}"
        where.mkdir()
        before = snapshot(root)
        began = datetime.now()
        step = next_step(root)
        left = (cfg.deadline - began).total_seconds()
        cycle = {"n": n, "start": _stamp(began), "step": step["kind"], "say": step["say"][:300]}
        if step["kind"] == "WAIT":
            cycle |= {"kind": "wait", "agent": None} | wait_on_queue(root, step, min(cfg.poll_s, left))
            cycle["outcome"] = "waited"
        elif step["kind"] in CHORES and step.get("command") and not chore_failed:
            cycle |= {"kind": "chore", "agent": None} | run_chore(root, step["command"])
            chore_failed = cycle["outcome"] != "ok"  # then the agent gets the step, with the error to read
        else:
            cycle |= {"kind": "agent", "agent": cfg.agent} | run_agent(root, cfg, prompt_for(root, step, cfg), where, left)
        after = snapshot(root)
        cycle |= {"end": _stamp(datetime.now()), "progress": progress(before, after),
                  "rows_added": [r["run_id"] for r in ledger.read(ledger.ledger_path(root))[0][before["rows"]:]]}
        (where / "cycle.json").write_text(json.dumps(cycle, indent=1))
        night.cycles.append(cycle)
        _save(root, night)
        say(f"lab overnight: cycle {n} {cycle['kind']} {step['kind']}: {cycle['outcome']}"
            + (f" (exit {cycle['exit']})" if cycle.get("exit") else "")
            + (f", {', '.join(cycle['progress'])}" if cycle["progress"] else ", nothing new"))
        if cycle["kind"] == "wait" and cycle["exit"] not in (0, 1, 124):  # `lab wait` failed (no daemon): no hot loop
            say(f"lab overnight: the wait failed: {cycle['said'][-200:]}; next look in {cfg.poll_s:g} s")
            reason = sleep_unless_stopped(root, night, cfg, max(0.0, cfg.poll_s - cycle["wall_s"]))
        elif cycle["outcome"] == "crash":
            crashes += 1
            delay = min(cfg.backoff_s * 2 ** (crashes - 1), cfg.backoff_max_s)
            say(f"lab overnight: the agent exited {cycle['exit']}; restarting in {delay:g} s")
            reason = sleep_unless_stopped(root, night, cfg, delay)
        elif cycle["outcome"] == "limit":
            limits += 1
            delay = min(cfg.limit_backoff_s * 2 ** (limits - 1), 4 * cfg.limit_backoff_s)
            say(f"lab overnight: usage limit ({cycle['last_line'][:120]}); retrying in {delay:g} s")
            reason = sleep_unless_stopped(root, night, cfg, delay)
        elif cycle["kind"] == "agent":
            crashes, limits, chore_failed = 0, 0, False
    return reason


def finish(root: Path, night: Night, reason: str, say=print) -> Night:
    """Close the window, put the reason in the journal, write the summary."""
    night.stopped, night.ended = reason, _stamp(datetime.now())
    _save(root, night)
    agents = [c for c in night.cycles if c["kind"] == "agent"]
    rows = night_rows(root, night)
    body = (f"**Observation:** night {night.id} ran {len(agents)} agent cycles and "
            f"{len(night.cycles) - len(agents)} driver cycles (waits on the queue, notes commits); {len(rows)} runs added"
            + (f" ({', '.join(f'{n} {s}' for s, n in _counts(r['status'] for r in rows).items())})" if rows else "")
            + f". Stopped by {reason}.\n\n**Inference:** see the morning summary, 9_reports/"
            f"{night.id[:4]}-{night.id[4:6]}-{night.id[6:8]}{REPORT_SUFFIX}.")
    journal.add(root, f"overnight {night.id}: stopped ({reason.split(':')[0]})", body)
    path = write_summary(root, night)
    night.summary = str(path.relative_to(root))
    _save(root, night)
    say(f"lab overnight: stopped: {reason}\nlab overnight: morning summary: {night.summary}")
    return night


def _counts(values) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


# ---------------------------------------------------------------- the morning summary

def summary_path(root: Path, night: Night) -> Path:
    return Path(root) / "9_reports" / f"{night.id[:4]}-{night.id[4:6]}-{night.id[6:8]}{REPORT_SUFFIX}"


def render_summary(root: Path, night: Night) -> str:
    """The morning summary: short, every number from the ledger or the cycle log."""
    rows, _ = ledger.read(ledger.ledger_path(root))
    tonight = rows[night.rows_at_start:]
    main_sha = runs.main_train_sha(root)
    base, judged = status.judged(rows, main_sha)
    slugs = list(dict.fromkeys(r["slug"] for r in tonight if r["slug"] not in names.BASELINE_SLUGS))
    agents = [c for c in night.cycles if c["kind"] == "agent"]
    waits = [c for c in night.cycles if c["kind"] == "wait"]
    chores = [c for c in night.cycles if c["kind"] == "chore"]
    outcomes = _counts(c["outcome"] for c in agents)
    usage: dict[str, float] = {}
    for c in agents:
        for k, v in (c.get("usage") or {}).items():
            usage[k] = usage.get(k, 0) + v
    reporting = sum(1 for c in agents if c.get("usage"))
    flying = runs.in_flight(root, {r["run_id"] for r in rows})
    start, end = night.started.replace("T", " ")[:16], (night.ended or _stamp(datetime.now())).replace("T", " ")[:16]
    lines = [f"# Overnight {start} → {end}", "",
             f"- **Window:** {start} to {night.deadline.replace('T', ' ')[:16]} (deadline); "
             + (f"ended {end}: {night.stopped}" if night.stopped else f"still running at {end}"),
             f"- **Agent:** `{night.agent}`",
             f"- **Cycles:** {len(agents)} agent ({', '.join(f'{n} {k}' for k, n in outcomes.items()) or 'none'}), "
             f"{len(waits)} waits on the queue with no agent running "
             f"({sum(c['wall_s'] for c in waits) / 60:.1f} min), {len(chores)} notes commits by the driver"
             + (f" ({sum(c['outcome'] != 'ok' for c in chores)} failed, handed to the agent)"
                if any(c["outcome"] != "ok" for c in chores) else ""),
             "- **Model usage:** " + (", ".join(f"{_num(v)} {k.replace('_', ' ')}" if k != "cost_usd" else f"${v:.2f}"
                                               for k, v in sorted(usage.items()))
                                     + f" (as the CLI reported, {reporting} of {len(agents)} cycles)"
                                     if usage else "not reported by the agent command"),
             f"- **Runs tonight:** {len(tonight)}"
             + (f" ({', '.join(f'{n} {s}' for s, n in _counts(r['status'] for r in tonight).items())}); "
                f"results.tsv rows {night.rows_at_start + 1}-{len(rows)}" if tonight else ""),
             f"- **{status.first_upper(status.baseline_line(base))}**",
             f"- **{status.first_upper(status.best_line(status.best_of(judged)))}**", ""]
    lines += ["## Verdicts (experiments with runs tonight)", ""]
    lines += [f"- {s}: {status.effect_text(judged[s])}" if s in judged else f"- {s}: no verdict (no baseline yet)"
              for s in slugs] or ["- none"]
    failed = [r for r in tonight if r["status"] != "ok"]
    crashed = [c for c in agents if c["outcome"] in ("crash", "limit", "deadline")]
    lines += ["", "## Failures", ""]
    lines += [f"- run {r['run_id']} {r['slug']} seed {r['seed']}: {r['status']}: {r['reason'][:200]}" for r in failed]
    lines += [f"- cycle {c['n']} ({c['step']}): agent {c['outcome']}, exit {c['exit']}: {c['last_line'][:200]}"
              for c in crashed]
    lines += [f"- cycle {c['n']} ({c['step']}): the driver's `{c['ran'][:80]}` exited {c['exit']}: "
              f"{(c['said'].splitlines() or [''])[-1][:200]}"
              for c in night.cycles if (c["kind"] == "chore" and c["exit"] != 0)
              or (c["kind"] == "wait" and c["exit"] not in (0, 1, 124))]  # lab wait: 1 = a job not ok, 124 = timeout
    if len(lines) and lines[-1] == "":
        lines.append("- none")
    warned = {w: [c["n"] for c in agents if w in c.get("warnings", [])] for c in agents for w in c.get("warnings", [])}
    lines += [f"- cycles {', '.join(map(str, ns))}: {w}" for w, ns in warned.items()]
    lines += ["", "## Still queued", ""]
    lines += [f"- {len(flying)} run(s) without a row yet: "
              + ", ".join(f"{n} {s}" for s, n in _counts(r.get("slug", "?") for r in flying).items())] if flying else ["- nothing"]
    lines += ["", "## Progress", "", "![progress](progress.png) (`lab plot` draws it; git ignores the PNG)", "",
              f"Every cycle's prompt, output, exit status and rows: `{window.DIR}/{night.id}/`.", ""]
    return "\n".join(lines)



def _num(v: float) -> str:
    return f"{int(v):,}" if float(v).is_integer() else f"{v:,.2f}"


def write_summary(root: Path, night: Night) -> Path:
    """Write (or rewrite) the night's summary and the progress plot beside it."""
    from lab.judge import plot  # matplotlib: only when a summary is written

    rows, _ = ledger.read(ledger.ledger_path(root))
    main_sha = runs.main_train_sha(root)
    base, judged = status.judged(rows, main_sha)
    kept = {s for s, v in judged.items() if v.kind == "keep"} if base else None
    plot.plot(rows, Path(root) / "9_reports" / "progress.png", kept=kept, title=f"lab: {Path(root).name}", base=base,
              headline=status.best_line(status.best_of(judged)) if base else "")
    path = summary_path(root, night)
    _write(path, render_summary(root, night).encode())
    return path


def status_line(root: Path) -> str | None:
    """What `lab status` says about the newest night: running until when, or its summary and stop reason."""
    try:
        night = load(root)
    except ValueError:
        return None
    if window.is_open(window.read(root)):
        return f"overnight: night {night.id} running until {night.deadline[11:16]} ({len(night.cycles)} cycles so far)"
    if night.summary:
        return f"overnight: {night.summary} (night {night.id}, stopped: {night.stopped})"
    return f"overnight: night {night.id} ended without a summary: `lab overnight --summary` writes it"
