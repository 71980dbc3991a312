"""A run, defined once: its row's provenance, its budget as a key, the seeds it takes, and runs in flight.

eval.py builds a row from `provenance`, and so does the queue for a job that died without one, so
the two cannot disagree. Stdlib only: `lab next` and `lab status` import it on every call.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
from pathlib import Path

from lab import gitx, jobs, ledger, names


def device_column(device: str) -> str:
    """The row's `device`: 'cpu', or the GPU's name as nvidia-smi gives it (what a comparison must share)."""
    if not device.startswith("cuda"):
        return "cpu"
    smi = shutil.which("nvidia-smi")
    index = device.partition(":")[2] or "0"
    try:
        out = subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader", "-i", index], capture_output=True,
                             text=True, timeout=30) if smi else None
    except (OSError, subprocess.TimeoutExpired):
        out = None
    name = out.stdout.strip().splitlines()[0] if out and out.returncode == 0 and out.stdout.strip() else ""
    return name or "cuda"


def provenance(root: Path, checkout: Path, run_id: str, seed: int, budget_s: float, max_steps: int | None,
               device: str, label: str = "", task: int | None = None, predicted_delta: float | None = None) -> dict:
    """Every column of a run's row that is known before it trains (identity, queue, provenance)."""
    return row_of(run_id, gitx.branch(checkout), gitx.head_commit(checkout), bool(jobs.unclean(checkout)), seed, budget_s,
                  max_steps, device, label, task, predicted_delta, eval_sha=jobs.file_sha(Path(root) / "eval.py"),
                  prepare_sha=jobs.file_sha(Path(root) / "prepare.py"), train_sha=jobs.file_sha(Path(checkout) / "train.py"))


def row_of(run_id: str, branch: str, commit: str, dirty: bool, seed: int, budget_s: float, max_steps: int | None,
           device: str, label: str, task: int | None, predicted_delta: float | None, *, eval_sha: str | None,
           prepare_sha: str | None, train_sha: str | None) -> dict:
    """The row's columns known before training, from facts given (the protected grader knows them its own way)."""
    return {
        "run_id": run_id, "time": ledger.utc_now(), "slug": slug_of(branch), "branch": branch, "commit": commit, "dirty": dirty,
        "label": label, "pueue_task": task, "predicted_delta": predicted_delta,
        "seed": seed, "budget_s": float(budget_s), "max_steps": max_steps, "device": device_column(device),
        "host": platform.node(), "eval_sha": eval_sha, "prepare_sha": prepare_sha, "train_sha": train_sha,
    }


def slug_of(branch: str) -> str:
    return "detached" if branch == "HEAD" else branch.removeprefix(names.EXP)


def budget_text(row: dict) -> str:
    """A budget as the comparison sees it: `8 steps` or `300 s`."""
    steps = row.get("max_steps")
    if steps not in (None, ""):
        return f"{int(steps)} steps"
    return f"{float(row['budget_s']):g} s"


def eval_args(key: dict, device: str) -> list[str]:
    """The `just eval` arguments that reproduce a budget key (`budget_s`, `max_steps`) on a `device` box."""
    args = []
    if key.get("max_steps") not in (None, ""):
        args += ["--max-steps", str(int(key["max_steps"]))]
    budget = float(key["budget_s"])
    if budget != jobs.DEFAULT_BUDGET_S[device]:
        args += ["--budget-s", f"{budget:g}"]
    return args


def gpu_count() -> int:
    """GPUs `nvidia-smi -L` lists; 0 without nvidia-smi or when it fails."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return 0
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(line.startswith("GPU ") for line in out.stdout.splitlines()) if out.returncode == 0 else 0


def main_train_sha(root: Path) -> str | None:
    """sha of main's committed train.py: baseline rows of any other train.py (before a merge) do not count."""
    blob = gitx.blobs([f"{names.MAIN}:train.py"], root)[0]
    return jobs.short_sha(blob) if blob is not None else None


def in_flight(root: Path, recorded: set[str]) -> list[dict]:
    """Runs with no row yet that are on their way: queued jobs and evals alive right now (foreground too)."""
    out = {r["run_id"]: r for r in jobs.pending_records(root, recorded)}
    for r in jobs.running_records(root):
        if r["run_id"] not in recorded and jobs.run_alive(root, r["run_id"]):
            out.setdefault(r["run_id"], r)
    return list(out.values())


PLAN = ("eval_sha", "prepare_sha", "budget_s", "max_steps", "device")  # the comparison key known before a run


def same_plan(row: dict, plan: dict) -> bool:
    """Whether `row` ran under the plan's grader, budget and device (the key less data_sha, set by the corpus)."""
    return all(float(row[c]) == float(plan[c]) if c == "budget_s" else str(row[c] or "") == str(plan[c] or "")
               for c in PLAN)


def next_seeds(rows: list[dict], slug: str, train_sha: str | None, plan: dict, flying: list[dict], k: int) -> list[int]:
    """The k lowest seeds with neither an ok row of this train.py under `plan` nor a run in flight.

    The one seed rule: `lab next`, `lab queue` and `lab baseline`, for baseline and experiments alike.
    """
    if k < 1:
        raise ValueError(f"--seeds {k}: ask for at least one seed")
    slugs = names.BASELINE_SLUGS if slug in names.BASELINE_SLUGS else (slug,)
    taken = {int(r["seed"]) for r in rows if r["slug"] in slugs and r["status"] == "ok"
             and r["train_sha"] == train_sha and same_plan(r, plan)}
    taken |= {int(r["seed"]) for r in flying if r.get("slug") in slugs}
    seeds, seed = [], 0
    while len(seeds) < k:
        if seed not in taken:
            seeds.append(seed)
        seed += 1
    return seeds


def orphans(root: Path, recorded: set[str]) -> list[dict]:
    """Rows for evals that died without writing theirs (SIGKILL, a tool's timeout): their record, no live lock."""
    out = []
    for r in jobs.running_records(root):
        if r["run_id"] in recorded or jobs.run_alive(root, r["run_id"]):
            continue
        row = {c: r[c] for c in ledger.COLUMNS if c in r}
        row.update(status="killed", time=ledger.utc_now(), wall_s=0.0,
                   reason=f"eval.py (pid {r.get('pid', '?')}) died before writing its row: killed from outside "
                          "(SIGKILL, a tool's timeout, a reboot)")
        out.append(row)
    return out


def settle_orphans(root: Path, rows: list[dict]) -> list[dict]:
    """Append a `killed` row, exactly once, for every orphaned run; remove the records that have a row."""
    recorded = {r["run_id"] for r in rows}
    added = ledger.append_new(orphans(root, recorded), ledger.ledger_path(root),
                              unless=lambda row: jobs.run_alive(root, row["run_id"]))  # asked again under the ledger's lock
    recorded |= {r["run_id"] for r in added}
    for r in jobs.running_records(root):
        if r["run_id"] in recorded and not jobs.run_alive(root, r["run_id"]):
            jobs.drop_running(root, r["run_id"])
    return added
