"""What runs leave in the root's .cache: smoke results per content, queued-run records, runs in flight.

Stdlib only: eval.py writes these and `lab queue` / `lab next` read them.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path

from lab import files, gitx, ledger, taxonomy

SMOKE_DIR = Path(".cache") / "smoke"
QUEUE_DIR = Path(".cache") / "queue"
RUNNING_DIR = Path(".cache") / "running"
# Notes cannot change what a run does: committing an idea, a report or the journal keeps a smoke pass.
NOTES = ("1_ideas/", "9_reports/", "0_docs/papers/")
DEFAULT_BUDGET_S = {"cuda": 300.0, "cpu": 60.0}  # eval.py's training budget when none is given


def default_budget(device: str) -> float:
    """The training budget of a run on `device` (cpu, cuda or cuda:N) when none is given."""
    return DEFAULT_BUDGET_S[device.split(":")[0]]


def short_sha(data: bytes) -> str:
    """The 16-hex-digit sha256 the ledger's *_sha columns hold; the smoke gate compares these."""
    return hashlib.sha256(data).hexdigest()[:16]


def file_sha(path: Path) -> str:
    """short_sha of a file's bytes, '' when there is no such file."""
    return short_sha(path.read_bytes()) if path.is_file() else ""


def new_run_id(now: datetime | None = None) -> str:
    """A fresh run id: UTC time to the second and 4 random hex digits (sorts by time, unique in practice)."""
    return (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def pin_gpu(env: dict[str, str], gpus: int) -> str | None:
    """Give a pueue job the GPU of its slot unless the user chose CUDA_VISIBLE_DEVICES; returns the GPU index.

    Slot k of the group runs on GPU k mod `gpus` (two slots per GPU share it), indices in PCI bus order,
    the order nvidia-smi and the sandbox's device nodes use.
    """
    worker = env.get("PUEUE_WORKER_ID", "")
    if not worker.isdigit() or "CUDA_VISIBLE_DEVICES" in env or gpus < 1:
        return None
    env["CUDA_VISIBLE_DEVICES"], env["CUDA_DEVICE_ORDER"] = str(int(worker) % gpus), "PCI_BUS_ID"
    return env["CUDA_VISIBLE_DEVICES"]


def _write(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = (json.dumps(data, indent=1, ensure_ascii=False, default=str) + "\n").encode()
    if path.exists():
        files.replace(path, payload)
    else:
        files.write_new(path, payload)
    return path


def _read(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError as e:
        raise ValueError(f"{path} is not JSON ({e}): delete it and run the step that writes it again") from None
    return data if isinstance(data, dict) else None


def unclean(checkout: Path) -> list[str]:
    """Paths that make `checkout` differ from its HEAD commit: changed or untracked, global files and notes aside."""
    return [p for p in gitx.changed_paths(checkout, untracked=True) if not _is_note(p)]


def content_key(checkout: Path) -> str:
    """What a smoke pass vouches for: HEAD's tree without global files and notes (short sha of their blobs)."""
    listing = gitx.git("ls-tree", "-r", "-z", "HEAD", cwd=checkout)
    kept = [e for e in listing.split("\0") if e and not _is_note(e.split("\t", 1)[1])]
    return short_sha("\0".join(kept).encode())


def _is_note(path: str) -> bool:
    return taxonomy.is_global(path) or path.startswith(NOTES)


def record_smoke(root: Path, key: str, eval_sha: str, train_sha: str, commit: str, wall_s: float,
                 status: str = "ok", reason: str = "") -> Path:
    """Note that `just smoke` passed (or failed, with the reason) on the content `key` under this eval.py."""
    path = Path(root) / SMOKE_DIR / f"{key}.json"
    _write(path, {"key": key, "status": status, "reason": reason, "eval_sha": eval_sha, "train_sha": train_sha,
                  "commit": commit, "wall_s": wall_s,
                  "time": ledger.utc_now()})
    return path


def smoke_result(root: Path, key: str) -> dict | None:
    """The last `just smoke` on the content `key` (status ok or failed), None if it never ran."""
    return _read(Path(root) / SMOKE_DIR / f"{key}.json") if key else None


def smoke_pass(root: Path, key: str, eval_sha: str) -> dict | None:
    """The smoke pass on `key` under this eval.py, or None."""
    found = smoke_result(root, key)
    return found if found and found.get("status") == "ok" and found.get("eval_sha") == eval_sha else None


def job_path(root: Path, run_id: str) -> Path:
    return Path(root) / QUEUE_DIR / f"{run_id}.json"


def write_job(root: Path, job: dict) -> Path:
    """Create or update the record of a queued run (keyed by its run id)."""
    path = job_path(root, job["run_id"])
    _write(path, job)
    return path


def read_job(root: Path, run_id: str) -> dict | None:
    return _read(job_path(root, run_id)) if run_id else None


def records(root: Path) -> list[dict]:
    """Every queued run's record, oldest first."""
    folder = Path(root) / QUEUE_DIR
    return [r for p in sorted(folder.glob("*.json")) if (r := _read(p))] if folder.is_dir() else []


def pending_records(root: Path, recorded: set[str]) -> list[dict]:
    """The records of pueue jobs whose run id has no ledger row yet (queued or running)."""
    return [r for r in records(root) if r.get("task") is not None and r.get("run_id") not in recorded]


def pending(root: Path, recorded: set[str]) -> dict[str, list[dict]]:
    """pending_records by slug."""
    out: dict[str, list[dict]] = {}
    for r in pending_records(root, recorded):
        out.setdefault(r.get("slug", ""), []).append(r)
    return out


def remove_job(root: Path, run_id: str) -> None:
    try:
        os.unlink(job_path(root, run_id))
    except FileNotFoundError:
        pass


_held: dict = {}  # run id -> its open lock file, for this process's lifetime


def hold_run_lock(root: Path, run_id: str):
    """Take the lock that says "eval of `run_id` is alive"; keep the returned file open for the run's life."""
    path = Path(root) / RUNNING_DIR / f"{run_id}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ValueError(f"another eval of run {run_id} is running (it holds {path})") from None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    _held[run_id] = handle  # even a caller that drops the handle keeps the lock until this process ends
    return handle


def run_alive(root: Path, run_id: str) -> bool:
    """Whether a live process holds run_id's lock (an eval of it is running now)."""
    path = Path(root) / RUNNING_DIR / f"{run_id}.lock"
    try:
        handle = open(path)
    except FileNotFoundError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def write_running(root: Path, row: dict) -> Path:
    """The provisional row of a run in flight (its provenance), for a `killed` row if the eval dies unseen."""
    return _write(Path(root) / RUNNING_DIR / f"{row['run_id']}.json", {**row, "pid": os.getpid()})


def running_records(root: Path) -> list[dict]:
    folder = Path(root) / RUNNING_DIR
    return [r for p in sorted(folder.glob("*.json")) if (r := _read(p)) and r.get("run_id")] if folder.is_dir() else []


def drop_running(root: Path, run_id: str) -> None:
    for suffix in (".json", ".lock"):
        try:
            os.unlink(Path(root) / RUNNING_DIR / f"{run_id}{suffix}")
        except FileNotFoundError:
            pass


def wait_run(root: Path, run_id: str, timeout: float | None = None) -> bool:
    """Block until run `run_id`'s eval.py has ended (its lock is free); False if `timeout` seconds pass first."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while run_alive(root, run_id):
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(0.5)
    return True
