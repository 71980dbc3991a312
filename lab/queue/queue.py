"""The GPU queue: labelled pueue jobs behind a smoke gate, one slot per GPU, one ledger row per job.

A job is `just eval --seed N …` in the slug's checkout, added to pueue's `lab` group with the label
`Q: … H: …`. Its run id is made here and travels in the task's environment (pueue copies the adding
client's), so the row eval.py appends names it; `.cache/queue/{run_id}.json` keeps what the row needs
if the job dies before eval.py can write one, and `reconcile` writes that row, exactly once.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections import namedtuple
from datetime import UTC, datetime
from pathlib import Path

from lab import gitx, jobs, ledger, names, runs, slugs, taxonomy
from lab.judge import verdicts
from lab.loop import worktrees
from lab.queue import pueue

GROUP = "lab"
FAILED = {"Killed", "Failed", "FailedToSpawn", "DependencyFailed", "Errored"}
BLOCKING = {"Paused": "is paused and keeps its slot: resume it with `pueue start {id}`",
            "Stashed": "is stashed: enqueue it with `pueue enqueue {id}`",
            "Locked": "is being edited (`pueue edit`): it waits until the editor closes"}
_OWN_FLAGS = {"--seed": "pass seeds with --seeds K", "--smoke": "run `just smoke` before queueing, not in the queue",
              "--workdir": "the queue runs the slug's own checkout"}

Job = namedtuple("Job", "task job row")
Job.__doc__ = "A task of this workspace's queue: the pueue Task, its .cache/queue record, its ledger row (or None)."


class QueueError(RuntimeError):
    """A job cannot be queued or watched; the message names the slug, task or file and the fix."""


def label_of(question: str, hypothesis: str) -> str:
    """pueue's label for a job: the question it answers and the outcome expected."""
    q, h = question.strip(), hypothesis.strip()
    if not q or not h:
        raise QueueError("a job needs --q (the question it answers) and --h (the outcome you expect), both non-empty")
    return f"Q: {q} H: {h}"


def predicted_delta(hypothesis: str) -> float | None:
    """The first number in the hypothesis, read as the predicted change of val_bpb (`expect -0.02` → -0.02)."""
    return verdicts.parse_prediction(hypothesis)[0]


def checkout_of(root: Path, slug: str) -> Path:
    """The checkout a slug's jobs run in: the root for `main`, else its worktree on exp/SLUG."""
    if slug == names.MAIN:
        return Path(root)
    try:
        slugs.check(slug)
    except slugs.SlugError as e:
        raise QueueError(str(e)) from None
    path = worktrees.path_of(root, slug)
    if not (path / ".git").exists():
        raise QueueError(f"no worktree {worktrees.DIR}/{slug}: start it with `lab start {slug}` "
                         f"(or queue `{names.MAIN}` for the baseline)")
    branch = gitx.branch(path)
    if branch != worktrees.branch_of(slug):
        raise QueueError(f"{worktrees.DIR}/{slug} is on {branch!r}, not {worktrees.branch_of(slug)}: "
                         f"`git -C {worktrees.DIR}/{slug} switch {worktrees.branch_of(slug)}`")
    return path


def smoke_gate(root: Path, checkout: Path, eval_sha: str) -> str:
    """HEAD of `checkout` if it is clean and `just smoke` passed on its content under this eval.py; else QueueError."""
    where = os.path.relpath(checkout, root)
    loose = jobs.unclean(checkout)
    if loose:
        raise QueueError(f"{where}: {uncommitted_advice(loose, where)}; a queued job runs a commit")
    commit = gitx.head_commit(checkout)
    if jobs.smoke_pass(root, jobs.content_key(checkout), eval_sha) is None:
        raise QueueError(f"`just smoke` has not passed on {where}'s HEAD {commit[:12]} under this eval.py: "
                         f"run `cd {where} && just smoke`, then queue again")
    return commit


def uncommitted_advice(loose: list[str], where: str) -> str:
    """What to do about uncommitted paths, without ever advising to commit a file that is not the agent's."""
    shown = lambda paths: ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
    frozen = [p for p in loose if set(taxonomy.classes_of(p)) & {"FROZEN", "HUMAN-ONLY"}]
    mine = [p for p in loose if p not in frozen]
    parts = []
    if frozen:
        parts.append(f"frozen file(s) changed: {shown(frozen)}: restore them (`git checkout main -- FILE`)")
    if mine:
        parts.append(f"uncommitted: {shown(mine)}: commit your own change (train.py) on the experiment branch; "
                     "logs and outputs belong under .cache/, which git ignores")
    return "; ".join(parts)


def eval_command(just: str, seed: int, eval_args: list[str]) -> str:
    """The job's shell command; every word quoted, because pueue hands the line to `sh -c`."""
    for arg in eval_args:
        flag = arg.split("=", 1)[0]
        if flag in _OWN_FLAGS:
            raise QueueError(f"eval argument {arg!r} is not allowed in a queued job: {_OWN_FLAGS[flag]}")
    return shlex.join([just, "eval", "--seed", str(seed), *eval_args])


def just_executable() -> str:
    """`just` beside this Python (rust-just in .venv), else on PATH: jobs must not depend on the adder's PATH."""
    beside = Path(sys.executable).parent / "just"
    found = str(beside) if beside.is_file() else shutil.which("just")
    if not found:
        raise QueueError("no `just` executable beside this Python or on PATH: run `uv sync` in the root checkout")
    return found


def setup(slots: int | None = None) -> str:
    """Create the `lab` group with one slot per GPU (1 without GPUs); idempotent. Returns what it did."""
    gpus = runs.gpu_count()
    want = slots if slots is not None else max(1, gpus)
    if want < 1:
        raise QueueError(f"--slots {want}: a group needs at least one slot")
    have = pueue.groups()
    if GROUP not in have:
        pueue.run("group", "add", GROUP, "--parallel", str(want))
        return f"created pueue group {GROUP!r} with {want} slot(s) ({gpus} GPU(s) seen by nvidia-smi)"
    current = have[GROUP]["parallel_tasks"]
    if slots is not None and current != slots:
        pueue.run("parallel", str(slots), "--group", GROUP)
        return f"pueue group {GROUP!r}: {current} -> {slots} slot(s)"
    note = "" if slots is not None or current == want else \
        f"; this box has {gpus} GPU(s): `lab setup --slots {want}` to match"
    return f"pueue group {GROUP!r} exists with {current} slot(s){note}"


def setup_ready() -> None:
    """Raise unless pueue is installed, its daemon answers and the `lab` group exists."""
    if GROUP not in pueue.groups():
        raise QueueError(f"pueue has no {GROUP!r} group: run `lab setup` (one slot per GPU)")


def add(root: Path, slug: str, question: str, hypothesis: str, seeds: int = 1, after: int | None = None,
        eval_args: list[str] = (), foreground: bool = False) -> list[dict]:
    """Queue one job per seed (or, with `foreground`, return them unqueued for `run_foreground`)."""
    root = Path(root)
    label = label_of(question, hypothesis)
    checkout = checkout_of(root, slug)
    eval_sha = jobs.file_sha(root / "eval.py")
    smoke_gate(root, checkout, eval_sha)
    just = just_executable()
    rows, _ = ledger.read(ledger.ledger_path(root))
    if not foreground:
        setup_ready()
    budget, steps, device = (_flag_value(eval_args, f) for f in ("--budget-s", "--max-steps", "--device"))
    device = device if device and device != "auto" else ("cuda" if runs.gpu_count() else "cpu")
    try:
        template = runs.provenance(root, checkout, "", 0, float(budget) if budget else jobs.default_budget(device),
                                   int(steps) if steps else None, device, label=label,
                                   predicted_delta=predicted_delta(hypothesis))
    except ValueError as e:
        raise QueueError(f"eval arguments {shlex.join(eval_args)!r}: {e}") from None
    base = {**template, "checkout": str(checkout), "question": question.strip(), "hypothesis": hypothesis.strip(),
            "eval_args": list(eval_args), "root": str(root)}
    flying = runs.in_flight(root, {r["run_id"] for r in rows})
    try:
        chosen = runs.next_seeds(rows, slug, template["train_sha"], template, flying, seeds)
    except ValueError as e:
        raise QueueError(str(e)) from None
    queued = []
    for seed in chosen:
        job = {**base, "run_id": jobs.new_run_id(), "seed": seed, "task": None,
               "command": eval_command(just, seed, list(eval_args)), "after": after, "added": ledger.utc_now()}
        while jobs.job_path(root, job["run_id"]).exists():  # two adds in the same second
            job["run_id"] = jobs.new_run_id()
        if not foreground:  # a foreground job's record is written when it starts (run_foreground)
            jobs.write_job(root, job)
            try:
                _submit(root, job)
            except (pueue.PueueError, QueueError) as e:
                done = ", ".join(f"task {j['task']} (seed {j['seed']})" for j in queued)
                raise QueueError(f"{e}" + (f" (already queued: {done})" if done else "")) from None
        queued.append(job)
    return queued


def _flag_value(args: list[str], flag: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def job_env(job: dict) -> dict[str, str]:
    """The environment a job runs with: the caller's, plus its run id and label for eval.py's row."""
    env = {k: v for k, v in os.environ.items() if k not in ("PUEUE_WORKER_ID", "PUEUE_GROUP")}
    return {**env, "LAB_RUN_ID": job["run_id"], "LAB_LABEL": job["label"], "LAB_ROOT": job["root"]}


def _submit(root: Path, job: dict) -> None:
    """Add stashed, record the task id where eval.py will read it, then enqueue: the row always names its task."""
    try:
        task = pueue.add(job["command"], label=job["label"], workdir=job["checkout"], group=GROUP,
                         after=[job["after"]] if job["after"] is not None else [], stashed=True, env=job_env(job))
    except pueue.PueueError:
        jobs.remove_job(root, job["run_id"])
        raise
    job["task"] = task
    jobs.write_job(root, job)
    try:
        pueue.run("enqueue", str(task))
    except pueue.PueueError as e:
        raise QueueError(f"task {task} was added but is still stashed ({e}): `pueue enqueue {task}`") from None


def run_foreground(added: list[dict], say=print) -> int:
    """Run the jobs now, one after another, without pueue, each in its checkout; eval.py appends their rows
    as usual. A job's record exists only while it runs, so jobs never started (the caller was killed) leave
    nothing behind, and one killed mid-run is a `killed` row on the next `lab status`. Returns how many failed."""
    failed = 0
    for job in added:
        say(f"foreground: {job['slug']} seed {job['seed']} run {job['run_id']}: {job['command']}")
        jobs.write_job(job["root"], job)
        try:
            failed += subprocess.run(shlex.split(job["command"]), cwd=job["checkout"], env=job_env(job)).returncode != 0
        finally:
            jobs.remove_job(job["root"], job["run_id"])
    return failed


def ours(root: Path, tasks: dict[int, pueue.Task]) -> list[Job]:
    """This workspace's jobs among pueue's tasks (a LAB_RUN_ID with a record here), oldest first."""
    rows, _ = ledger.read(ledger.ledger_path(root))
    by_run = {r["run_id"]: r for r in rows}
    found = []
    for task in sorted(tasks.values(), key=lambda t: t.id):
        run_id = task.envs.get("LAB_RUN_ID", "")
        record = jobs.read_job(root, run_id) if run_id and ledger._ID.fullmatch(run_id) else None
        if record is not None:
            found.append(Job(task, record, by_run.get(run_id)))
    return found


def reason_of(task: pueue.Task) -> tuple[str, str]:
    """(ledger status, reason) for a job that ended without a row, in pueue's terms."""
    if task.result == "Killed":
        return "killed", f"pueue task {task.id} was killed (`pueue kill`, a daemon shutdown or crash) before eval.py wrote a row"
    if task.result == "Failed":
        return "crash", f"pueue task {task.id} failed with exit code {task.detail} before eval.py wrote a row"
    if task.result == "FailedToSpawn":
        return "crash", f"pueue could not start task {task.id}: {task.detail}"
    if task.result == "DependencyFailed":
        return "crash", f"pueue task {task.id} never ran: a task it waits for (--after) failed"
    return "crash", f"pueue task {task.id} ended {task.result} (an I/O error inside pueue) before eval.py wrote a row"


def row_for(job: dict, state: str, reason: str, end: datetime | None = None, wall_s: float = 0.0) -> dict:
    """The ledger row for a queued job that ended without one: its recorded provenance and the outcome."""
    row = {c: job[c] for c in ledger.COLUMNS if c in job}
    return {**row, "time": ledger.utc_now(end), "status": state, "reason": reason, "wall_s": round(max(wall_s, 0.0), 1),
            "pueue_task": job["task"]}


def reconcile(root: Path, found: list[Job], tasks: dict[int, pueue.Task] | None = None, tail=pueue.log_tail) -> list[dict]:
    """Append a row for every job that ended Killed/Failed/… without one, and (given all of pueue's `tasks`)
    for every job pueue no longer lists; exactly once. Returns the rows added.

    A run whose eval.py still lives (jobs.run_alive) gets nothing, whatever pueue says: after a daemon
    crash pueue marks its tasks Killed but their processes run on and write their own rows. The check is
    made again under the ledger's lock, and eval.py checks for a row after taking its run lock, so a row
    written here and a result from eval.py exclude each other."""
    rows = []
    for j in found:
        if j.task.state == "Done" and j.task.result in FAILED and j.row is None and not jobs.run_alive(root, j.job["run_id"]):
            log = Path(root) / jobs.QUEUE_DIR / f"{j.job['run_id']}.log"
            try:
                text = tail(j.task.id)
            except pueue.PueueError as e:
                text = f"(pueue log failed: {e})"
            log.write_text(text + ("\n" if text and not text.endswith("\n") else ""), encoding="utf-8")
            state, reason = reason_of(j.task)
            wall = (j.task.end - j.task.start).total_seconds() if j.task.start and j.task.end else 0.0
            rows.append(row_for({**j.job, "task": j.task.id}, state, f"{reason}; log tail: {os.path.relpath(log, root)}",
                                j.task.end, wall))
    if tasks is not None:
        listed = {t.envs.get("LAB_RUN_ID") for t in tasks.values()}
        recorded = {r["run_id"] for r in ledger.read(ledger.ledger_path(root))[0]}
        for job in (j for js in jobs.pending(root, recorded).values() for j in js):
            if job["run_id"] not in listed and not jobs.run_alive(root, job["run_id"]):
                rows.append(row_for(job, "killed", f"pueue no longer lists task {job['task']} (removed, cleaned or reset "
                                                   "before lab saw it end) and eval.py wrote no row"))
    if not rows:
        return []
    return ledger.append_new(rows, ledger.ledger_path(root), unless=lambda row: jobs.run_alive(root, row["run_id"]))


def watch(root: Path) -> tuple[list[Job], list[dict], list[str]]:
    """(our jobs, rows reconcile just added, warnings) from one `pueue status --json`."""
    tasks, groups = pueue.status()
    found = ours(root, tasks)
    added = reconcile(root, found, tasks)
    if added:
        found = ours(root, tasks)
    warnings = []
    if GROUP not in groups:
        warnings.append(f"pueue has no {GROUP!r} group: run `lab setup`")
    elif groups[GROUP]["status"] == "Paused":
        warnings.append(f"pueue group {GROUP!r} is paused: nothing new starts until `pueue start --group {GROUP}`")
    for j in found:
        if j.task.state in BLOCKING:
            warnings.append(f"task {j.task.id} {BLOCKING[j.task.state].format(id=j.task.id)}")
    return found, added, warnings


def describe(root: Path, found: list[Job], rows: list[dict]) -> list[dict]:
    """One plain dict per job for `lab queue status`: state, runtime, the row's metric vs the prediction, and
    whether a job pueue calls Done still has a live eval.py and no row (`alive`: an orphan of a daemon
    restart, which pueue marked Killed)."""
    base = verdicts.noise(rows, runs.main_train_sha(root))
    now = datetime.now(UTC)
    out = []
    for j in found:
        t, row = j.task, j.row
        runtime = ((t.end or now) - t.start).total_seconds() if t.start else None
        observed = None
        if row and row["status"] == "ok" and base and verdicts.key(row) == verdicts.key(base.key):
            observed = float(row["val_bpb"]) - base.mean
        out.append({
            "task": t.id, "run_id": j.job["run_id"], "slug": j.job["slug"], "seed": j.job["seed"], "state": t.state,
            "result": t.result if t.result != "Failed" else f"Failed ({t.detail})", "runtime_s": runtime,
            "row": row["status"] if row else None, "val_bpb": float(row["val_bpb"]) if row and row["val_bpb"] else None,
            "observed_delta": observed, "predicted_delta": j.job.get("predicted_delta"), "label": t.label or j.job["label"],
            "reason": row["reason"] if row else "",
            "alive": t.state == "Done" and row is None and jobs.run_alive(root, j.job["run_id"]),
        })
    return out


def blocked(found: list[Job], ids: list[int], groups: dict[str, dict] | None = None) -> dict[int, str]:
    """{task id: why} for those of `ids` that `pueue wait` would wait on forever: paused, stashed or locked
    tasks, and queued ones in a paused group (given pueue's `groups`)."""
    out = {}
    for j in found:
        if j.task.id not in ids:
            continue
        if j.task.state in BLOCKING:
            out[j.task.id] = f"task {j.task.id} {BLOCKING[j.task.state].format(id=j.task.id)}"
        elif j.task.state == "Queued" and (groups or {}).get(j.task.group, {}).get("status") == "Paused":
            out[j.task.id] = (f"task {j.task.id} is queued in the paused group {j.task.group!r}: "
                              f"it starts after `pueue start --group {j.task.group}`")
    return out


def wait(ids: list[int], timeout: float | None = None) -> bool:
    """Block (inside `pueue wait`, no polling here) until the tasks are Done; False on timeout."""
    cmd = [pueue.executable(), "--color", "never", "wait", "--quiet", *map(str, ids)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    if done.returncode != 0:  # pueue's wait says 0 for failed tasks too: only a broken client/daemon lands here
        raise pueue.error_of(cmd[3:], done.stdout + done.stderr)
    return True


def line_of(d: dict) -> str:
    """One line for a job: task, seed, outcome, metric vs prediction (`lab wait`)."""
    head = f"task {d['task']} {d['slug']} seed {d['seed']} run {d['run_id']}: "
    if d["row"] == "ok":
        obs = "n/a (no comparable baseline)" if d["observed_delta"] is None else f"{d['observed_delta']:+.4f}"
        pred = "none" if d["predicted_delta"] is None else f"{d['predicted_delta']:+.4f}"
        return head + f"ok val_bpb {d['val_bpb']:.4f}, delta {obs} (predicted {pred})"
    if d["row"]:
        return head + f"{d['row']}: {d['reason']}"
    if d.get("alive"):
        return head + (f"pueue says {d['state'].lower()} {d['result'] or ''}, but its eval.py still runs (orphaned by a "
                       "daemon restart): its row comes when it ends")
    return head + f"{d['state'].lower()}{' ' + d['result'] if d['result'] else ''}, no row yet"
