"""What runs leave for the queue in the root's .cache: smoke passes per commit and one record per queued run.

Stdlib only: eval.py writes these and `lab queue` reads them.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from datetime import datetime, timezone
from pathlib import Path

from lab import files, gitx, taxonomy

SMOKE_DIR = Path(".cache") / "smoke"
QUEUE_DIR = Path(".cache") / "queue"
DEFAULT_BUDGET_S = {"cuda": 300.0, "cpu": 60.0}  # eval.py's training budget when none is given


def short_sha(data: bytes) -> str:
    """The 16-hex-digit sha256 the ledger's *_sha columns hold; the smoke gate compares these."""
    return hashlib.sha256(data).hexdigest()[:16]


def file_sha(path: Path) -> str:
    """short_sha of a file's bytes, '' when there is no such file."""
    return short_sha(path.read_bytes()) if path.is_file() else ""


def new_run_id(now: datetime | None = None) -> str:
    """A fresh run id: UTC time to the second and 4 random hex digits (sorts by time, unique in practice)."""
    return (now or datetime.now(timezone.utc)).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def pin_gpu(env: dict[str, str]) -> str | None:
    """Give a pueue job the GPU of its slot (PUEUE_WORKER_ID) unless the user chose CUDA_VISIBLE_DEVICES."""
    worker = env.get("PUEUE_WORKER_ID", "")
    if not worker.isdigit() or "CUDA_VISIBLE_DEVICES" in env:
        return None
    env["CUDA_VISIBLE_DEVICES"] = worker
    return worker


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = (json.dumps(data, indent=1, ensure_ascii=False) + "\n").encode()
    if path.exists():
        files.replace(path, payload)
    else:
        files.write_new(path, payload)


def _read(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError as e:
        raise ValueError(f"{path} is not JSON ({e}): delete it and run the step that writes it again") from None
    return data if isinstance(data, dict) else None


def unclean(checkout: Path) -> list[str]:
    """Paths that make `checkout` differ from its HEAD commit: changed or untracked, global files aside."""
    return [p for p in gitx.changed_paths(checkout, untracked=True) if not taxonomy.is_global(p)]


def record_smoke(root: Path, commit: str, eval_sha: str, train_sha: str, wall_s: float) -> Path:
    """Note that `just smoke` passed on `commit` (with a clean tree) under this eval.py."""
    path = Path(root) / SMOKE_DIR / f"{commit}.json"
    _write(path, {"commit": commit, "eval_sha": eval_sha, "train_sha": train_sha, "wall_s": wall_s,
                  "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")})
    return path


def smoke_pass(root: Path, commit: str) -> dict | None:
    return _read(Path(root) / SMOKE_DIR / f"{commit}.json") if commit else None


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


def pending(root: Path, recorded: set[str]) -> dict[str, list[dict]]:
    """Per slug, the records of pueue jobs whose run id has no ledger row yet (queued or running)."""
    out: dict[str, list[dict]] = {}
    for r in records(root):
        if r.get("task") is not None and r.get("run_id") not in recorded:
            out.setdefault(r.get("slug", ""), []).append(r)
    return out


def remove_job(root: Path, run_id: str) -> None:
    try:
        os.unlink(job_path(root, run_id))
    except FileNotFoundError:
        pass
