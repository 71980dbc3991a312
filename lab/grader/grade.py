"""The protected grader's entry point: runs as the grader's user, from its installed copy, through sudo (installed by lab/grader/admin.py).

It takes only validated options, reads the commit's tree from the repository's git objects through a
git directory of its own (the repository's config, hooks, replace refs and attributes are never read;
git runs with a clean environment), trains it in the sandbox, grades it with its own eval.py and data,
scores the held-out test split into its private state, appends the signed row to its own ledger and
prints that row as JSON on stdout (everything else goes to stderr). Run it only through bin/grade.
"""

from __future__ import annotations

import argparse
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

from loguru import logger

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the installed src/ (python -I leaves it out)

import eval as grader_eval
from lab import jobs, ledger, runs
from lab.grader import protect, sandbox

HEX40 = re.compile(r"[0-9a-f]{40}")
TEXT = re.compile(r"[^\t\n\r\\\x00]{0,200}")


def refuse(out, message: str) -> None:
    out.write(json.dumps({"error": message}) + "\n")
    out.flush()
    sys.exit(2)


def options(argv: list[str], out) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="grade", allow_abbrev=False, add_help=False)
    p.error = lambda message: refuse(out, f"bad arguments: {message}")  # type: ignore[method-assign]
    p.add_argument("--commit", required=True)
    p.add_argument("--branch", required=True)
    p.add_argument("--run-id", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--budget-s", type=float)  # default: the resolved device's (jobs.DEFAULT_BUDGET_S)
    p.add_argument("--max-steps", type=int)
    p.add_argument("--hard-limit-s", type=float)
    p.add_argument("--device", default="auto")
    p.add_argument("--label", default="")
    p.add_argument("--pueue-task", type=int)
    p.add_argument("--predicted-delta", type=float)
    p.add_argument("--visible-gpus")  # the caller's CUDA_VISIBLE_DEVICES (its pueue slot's GPU): sudo clears it
    a = p.parse_args(argv)
    checks = [(HEX40.fullmatch(a.commit), f"--commit {a.commit!r} is not a full commit id"),
              (ledger._ID.fullmatch(a.run_id) and len(a.run_id) <= 80, f"--run-id {a.run_id!r} is not an identifier"),
              (TEXT.fullmatch(a.branch) and TEXT.fullmatch(a.label), "--branch and --label are one short line each"),
              (re.fullmatch(r"auto|cpu|cuda(:\d+)?", a.device), f"--device {a.device!r}: auto, cpu, cuda or cuda:N"),
              ((a.budget_s is None or 0 < a.budget_s <= 86400) and 0 <= a.seed < 1 << 31, "--budget-s in (0, 86400], --seed in [0, 2^31)"),
              (a.max_steps is None or 0 < a.max_steps < 1 << 31, "--max-steps must be positive"),
              (a.visible_gpus is None or re.fullmatch(r"[A-Za-z0-9,-]{0,400}", a.visible_gpus),
               f"--visible-gpus {a.visible_gpus!r}: GPU indices or uuids, comma-separated")]
    for ok, message in checks:
        if not ok:
            refuse(out, message)
    return a


def main() -> None:
    out = os.fdopen(os.dup(1), "w")  # the row's channel; training's output and logs go to stderr
    os.dup2(2, 1)
    cfg_path = Path(os.environ.get("LAB_GRADER_CONFIG", ""))
    cfg = protect.Config(**json.loads(cfg_path.read_text()))
    a = options(sys.argv[1:], out)
    logger.remove()
    logger.add(sys.stderr, format="{time:HH:mm:ss} grade | {message}")
    started = time.time()
    os.environ.update(protect.SAFE_GIT)  # sandbox._git copies os.environ: the wrapper's clean one plus these
    if a.visible_gpus is not None:  # before torch first touches CUDA (resolve_device)
        os.environ.update(CUDA_VISIBLE_DEVICES=a.visible_gpus, CUDA_DEVICE_ORDER="PCI_BUS_ID")
        logger.info(f"CUDA_VISIBLE_DEVICES={a.visible_gpus} (the caller's)")
    tmp = Path(tempfile.mkdtemp(prefix="grade-", dir=Path(cfg.state) / "tmp"))
    try:
        gitdir = protect.object_store(Path(cfg.repo), tmp)
        kind = subprocess.run(["git", "cat-file", "-t", a.commit], cwd=gitdir, capture_output=True, text=True)
        if kind.stdout.strip() != "commit":
            refuse(out, f"commit {a.commit[:12]} is not in {cfg.repo}'s objects")
        book = cfg.ledger
        if a.run_id in ledger.run_ids(book):
            refuse(out, f"run {a.run_id} already has a row in the grader's ledger")
        device = grader_eval.resolve_device(a.device)
        budget = a.budget_s or jobs.default_budget(device)
        train_blob = subprocess.run(["git", "cat-file", "blob", f"{a.commit}:train.py"], cwd=gitdir, capture_output=True)
        src = Path(cfg.install) / "src"
        row = runs.row_of(a.run_id, a.branch, a.commit, False, a.seed, budget, a.max_steps, device, a.label,
                          a.pueue_task, a.predicted_delta, eval_sha=jobs.file_sha(src / "eval.py"),
                          prepare_sha=jobs.file_sha(src / "prepare.py"),
                          train_sha=jobs.short_sha(train_blob.stdout) if train_blob.returncode == 0 else None)
        boxed, line = sandbox.available()
        if not boxed:
            refuse(out, f"{line}; the grader trains in that sandbox only")
        row["sandbox"] = line
        out_dir = Path(cfg.state) / "runs" / a.run_id
        out_dir.mkdir(parents=True)
        args = grader_eval.Args(budget_s=budget, seed=a.seed, device=a.device, max_steps=a.max_steps,
                                hard_limit_s=a.hard_limit_s, workdir=gitdir)
        grading = grader_eval.Protected(data_dir=Path(cfg.data_dir), base=cfg.commit)

        def on_signal(signum: int, _frame: object) -> None:
            raise grader_eval.Killed(f"received {signal.Signals(signum).name}")

        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, on_signal)
        try:
            outcome, _ = grader_eval.evaluate(args, row, gitdir, gitdir, out_dir, device, grading)
            row.update(status="ok", reason="", **outcome)
        except grader_eval.RunFailed as e:
            row.update(e.found, status=e.status, reason=e.reason)
        except grader_eval.Killed as e:
            row.update(e.found, status="killed", reason=f"the grader {e} while running; train.py's process tree was killed")
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
        row["wall_s"] = round(time.time() - started, 1)
        row.update(grader_sha=cfg.commit, signature="")
        row["signature"] = sign(cfg, ledger.format_row(row))
        if not ledger.append_new([row], book):
            refuse(out, f"run {a.run_id} already has a row in the grader's ledger")
        if grading.test_bpb is not None:
            with open(Path(cfg.state) / "private" / "test.tsv", "a") as f:
                f.write(f"{a.run_id}\t{row['slug']}\t{a.commit}\t{a.seed}\t{row['val_bpb']}\t{grading.test_bpb:.6f}\n")
        out.write(json.dumps({k: row.get(k) for k in ledger.COLUMNS}) + "\n")
        out.flush()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def sign(cfg: protect.Config, line: str) -> str:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = (Path(cfg.state) / "private" / "grader.key").read_text().strip()
    return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(key)).sign(protect.canonical(line)).hex()


if __name__ == "__main__":
    main()
