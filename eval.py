"""eval.py — FROZEN: the fixed metric. Only a human changes this file (META_MODE, see program.md).

Guarantees: train.py runs in its own process (never imported here), in this process group so a
queue's kill reaches it. A real eval trains the tree of the commit being evaluated (from git
objects; uncommitted changes are refused) inside a bubblewrap sandbox (lab/grader/sandbox.py: train.bin
only, no network, only the run's output directory writable), and kills it once its wall time, which
eval measures itself, passes the budget plus START_ALLOWANCE_S. The val bytes are read before
training starts and checked against the manifest before scoring. The metric is computed here, from
the exported artifact alone, loaded without running anything from it (lab/grader/artifact.py: plain
tensors, ATen operators, no state), after canaries on one fresh load (right shape, finite logits, no
peeking at later bytes, same number on re-evaluation) and with more probes hidden at random places
in the scoring pass on another. Every run appends exactly one row to the ROOT checkout's
results.tsv — crash, timeout, invalid and killed runs too, with the reason — except --smoke, which
writes no row. In a worktree this file is always the root checkout's copy.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import tyro
from loguru import logger

import prepare
from lab import files, gitx, jobs, ledger, names, procs, runs, taxonomy
from lab.grader import protect, sandbox

# torch (and lab.grader.artifact, which needs it) is imported by the functions that train or grade, not here: in protected
# mode this process only hands the run to the installed grader, and importing torch for nothing cost it ~4 s of CPU
# a run, most of what protection added to a short eval (bench/protect.py). lab.guard.meta likewise, by check_frozen.

ROOT = Path(__file__).resolve().parent
SEQ_LEN, VAL_BYTES = 512, 1 << 19  # the metric: first 512 KiB of val, 512-byte windows
# Rows per graded (and exported) batch: only the speed depends on it, the windows scored are the same.
EVAL_BATCH = {"cpu": 16, "cuda": 64}
SMOKE_SEQ_LEN, SMOKE_BATCH, SMOKE_VAL_BYTES, SMOKE_BUDGET_S = 64, 4, 1 << 14, 5.0
PROBE_TOLERANCE = 1e-4  # relative change of earlier logits allowed when later bytes change
PROBES = 3  # re-evaluations and as many causality probes, hidden at random places in the scoring pass
# Wall seconds a run may take beyond its budget: start-up, the untimed first steps (compilation) and export.
# Measured: the baseline with --max-steps 3 on 2 loaded CPU cores spends ~51 s outside train_s (17 s start-up,
# 2 untimed steps of ~15 s, 8 s export), sandboxed or not; twice that, rounded up. On CUDA the same steps
# (compilation of the bigger preset included) are what bench/gpu.py's harness breakdown measures.
START_ALLOWANCE_S = 120.0
CONFIG_CHARS = 120  # train_info.json's config_line, copied to the row's config column
# The held-out test split the protected grader scores privately: its first 32 KiB, without canaries (the artifact
# passed them on val). Measured (bench/protect.py): scoring 128 KiB with canaries cost ~40% of a 3-step CPU eval.
TEST_BYTES = 1 << 15


@dataclass
class Args:
    """Train this checkout's train.py in a subprocess, grade its exported model, append one ledger row."""

    budget_s: float | None = None  # training seconds; default 300 on CUDA, 60 on CPU, 5 with --smoke
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    max_steps: int | None = None  # a step budget for train.py (deterministic runs); the time budget still bounds the hard limit
    smoke: bool = False  # tiny model, budget and split; checks the whole path; writes no row
    hard_limit_s: float | None = None  # kill train.py earlier than budget + START_ALLOWANCE_S (never later)
    unsandboxed: bool = False  # train without bubblewrap where it cannot run; the row says sandbox none
    source: Path | None = None  # text corpus for prepare.py; default: this Python's standard library
    workdir: Path = Path(".")  # the checkout (root or worktree) whose train.py is evaluated


@dataclass
class Protected:
    """How the installed grader (lab/grader/grade.py) evaluates: its own data cache, its commit as the base, the test split."""

    data_dir: Path  # its data cache, built when protection was turned on
    base: str  # the installed main commit: what a commit's added data is measured against
    test_bpb: float | None = None  # set once the run is graded: kept in the grader's private state only


class RunFailed(Exception):
    """The run ends in a row of this status and reason; `found`: the outcome columns evaluate() had by then."""

    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status, self.reason, self.found = status, reason, {}


class Killed(BaseException):
    """A signal (queue kill, Ctrl-C) arrived; the run is recorded as killed. `found` as for RunFailed."""

    def __init__(self, *args: object):
        super().__init__(*args)
        self.found: dict = {}


def die(message: str) -> NoReturn:
    """Setup errors, before a row could be written: one line, exit code 2."""
    sys.stderr.write(f"eval.py: {message}\n")
    sys.exit(2)


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        die(f"--device {device} but torch sees no CUDA device here; use --device cpu")
    return device


def run_train(cmd: list[str], cwd: Path, env: dict[str, str], log_path: Path, hard_limit_s: float) -> tuple[int | None, str, float]:
    """Run train.py, teeing its output to the console and log_path.

    (returncode or None past hard_limit_s, last line, wall seconds of the process as measured here).
    """
    log = log_path.open("wb")  # opened before train.py starts: a link it puts at this path is never followed
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    tail: deque[str] = deque(maxlen=20)

    def pump() -> None:
        with log:
            for raw in proc.stdout:
                log.write(raw)
                log.flush()
                sys.stdout.buffer.write(raw)
                sys.stdout.flush()
                if raw.strip():
                    tail.append(raw.decode(errors="replace").strip())

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        rc = proc.wait(timeout=hard_limit_s)
    except subprocess.TimeoutExpired:
        rc = None
    finally:  # also on Killed: nothing of the run outlives eval
        if proc.poll() is None:
            procs.kill_tree(proc.pid)
            proc.wait()
        wall = time.monotonic() - started
        reader.join(timeout=5)
    return rc, (tail[-1] if tail else "(no output)"), wall


def grade(model_pt2: bytes, val: bytes, seq_len: int, batch: int, device: str,
          canaries: bool = True) -> tuple[float, int, dict[str, float]]:
    """val_bpb of the exported model on `val`, after the canaries; (val_bpb, params, seconds of each phase).

    The canaries run on one fresh load of the artifact, the metric on another. The scoring pass also
    carries PROBES re-evaluations and causality probes (later bytes taken from other val windows, so
    they look like any batch) at places drawn from os.urandom and kept in this process only: no call
    count or order tells a probe from a scored batch.
    """
    import torch  # imported here, not at the top: see the note above the imports
    import torch.nn.functional as F

    from lab.grader import artifact

    with torch.no_grad():
        started = time.perf_counter()
        try:
            program = artifact.load_fresh(model_pt2)
            canary_program = artifact.load_fresh(model_pt2) if canaries else program
            canary_model, model = canary_program.module(), program.module()
        except artifact.RefusedArtifact as e:
            raise RunFailed("invalid", f"model.pt2 refused: {e}") from None
        except Exception as e:
            raise RunFailed("invalid", f"model.pt2 could not be loaded as a torch.export program: {type(e).__name__}: {e}") from None
        params = sum(program.state_dict[name].numel() for name in program.graph_signature.parameters)
        data = torch.frombuffer(bytearray(val), dtype=torch.uint8).long()
        n_windows = (len(data) - 1) // seq_len
        if n_windows < 1:
            raise RunFailed("invalid", f"val split has {len(data)} bytes, fewer than one {seq_len}-byte window")
        starts = torch.arange(n_windows) * seq_len
        index = starts[:, None] + torch.arange(seq_len + 1)
        windows = data[index]

        def logits_of(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
            try:
                out = model(x.to(device))
            except Exception as e:
                raise RunFailed("invalid", f"model failed on a ({batch}, {seq_len}) int64 batch: {type(e).__name__}: {e}") from None
            if not isinstance(out, torch.Tensor) or tuple(out.shape) != (batch, seq_len, 256):
                shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise RunFailed("invalid", f"model returned {shape}, expected logits of shape ({batch}, {seq_len}, 256)")
            out = out.float()
            if not torch.isfinite(out).all():
                raise RunFailed("invalid", "model returned non-finite logits (nan or inf)")
            return out

        def batch_at(i: int) -> tuple[torch.Tensor, int]:
            """Windows i.. as one exported-shape batch (padded with zeros at the end) and the real count."""
            chunk = windows[i : i + batch]
            real = len(chunk)
            return torch.cat([chunk, chunk.new_zeros(batch - real, seq_len + 1)]), real

        def loss_of(logits: torch.Tensor, chunk: torch.Tensor, real: int) -> float:
            targets = chunk[:real, 1:].to(device)
            return F.cross_entropy(logits[:real].reshape(-1, 256), targets.reshape(-1), reduction="sum").item()

        def check_causal(logits: torch.Tensor, base: torch.Tensor, cut: int) -> None:
            moved = (logits[:, :cut] - base[:, :cut]).abs().max().item()
            if moved > PROBE_TOLERANCE * max(1.0, base.abs().max().item()):
                raise RunFailed("invalid", f"causality probe failed: changing bytes from position {cut} on moved "
                                           f"logits before it by {moved:.3g} (the model peeks at future bytes)")

        def check_again(again: float, first: float, b: int) -> None:
            if not math.isclose(again, first, rel_tol=1e-6, abs_tol=1e-6):
                raise RunFailed("invalid", f"re-evaluating batch {b} gave {again:.6f} after {first:.6f} "
                                           "(the model is not deterministic: dropout or randomness left in the export?)")

        if not canaries:  # a second split for an artifact that passed them: the plain scoring pass
            total = count = 0
            for b in range(-(-n_windows // batch)):
                chunk, real = batch_at(b * batch)
                total, count = total + loss_of(logits_of(model, chunk[:, :-1]), chunk, real), count + real * seq_len
            return total / count / math.log(2), params, {"canaries": 0.0, "grading": time.perf_counter() - started}
        x = batch_at(0)[0][:, :-1]
        base = logits_of(canary_model, x)
        drift = (logits_of(canary_model, x) - base).abs().max().item()
        if drift > PROBE_TOLERANCE * max(1.0, base.abs().max().item()):  # first: randomness would also fail the causality probe
            raise RunFailed("invalid", f"the same batch twice gave logits {drift:.3g} apart "
                                       "(the model is not deterministic: dropout or randomness left in the export?)")
        # Causality probe: rewrite every byte from `cut` on; the logits before `cut` must not move.
        gen = torch.Generator().manual_seed(1234)
        for cut in sorted({1, seq_len // 3, seq_len // 2, seq_len - 1}):
            probe = x.clone()
            probe[:, cut:] = torch.randint(0, 256, (batch, seq_len - cut), generator=gen)
            check_causal(logits_of(canary_model, probe), base, cut)

        # The scoring pass, on the other load, with the probes at secret places.
        canaries_done = time.perf_counter()
        rng = random.Random(os.urandom(16))
        n_batches = -(-n_windows // batch)
        plan: list[tuple[str, int]] = [("score", b) for b in range(n_batches)]
        for kind in ("again", "causal") * PROBES:
            at = rng.randint(1, len(plan))
            plan.insert(at, (kind, rng.choice([b for k, b in plan[:at] if k == "score"])))
        kept = {b for k, b in plan if k == "causal"}  # batches whose logits a later causality probe compares with
        losses: dict[int, float] = {}
        logits_kept: dict[int, torch.Tensor] = {}
        total, count = 0.0, 0
        for kind, b in plan:
            chunk, real = batch_at(b * batch)
            if kind == "causal":
                cut = rng.randint(1, seq_len - 1)
                probe = chunk[:, :-1].clone()
                probe[:, cut:] = batch_at(rng.randrange(n_batches) * batch)[0][:, cut:-1].roll(1, dims=0)
                check_causal(logits_of(model, probe), logits_kept[b], cut)
                continue
            logits = logits_of(model, chunk[:, :-1])
            loss = loss_of(logits, chunk, real)
            if kind == "again":
                check_again(loss, losses[b], b)
                continue
            losses[b] = loss
            total, count = total + loss, count + real * seq_len
            if b in kept:
                logits_kept[b] = logits
        seconds = {"canaries": canaries_done - started, "grading": time.perf_counter() - canaries_done}
        return total / count / math.log(2), params, seconds


def new_run_id() -> str:
    """LAB_RUN_ID (set by `lab queue`) if given, else a fresh id."""
    given = os.environ.get("LAB_RUN_ID", "")
    if not given:
        return jobs.new_run_id()
    if not ledger._ID.fullmatch(given):
        die(f"LAB_RUN_ID={given!r} is not an identifier (letters, digits, '.', '_', '-')")
    return given


def check_frozen(root: Path, work: Path) -> None:
    """Outside META_MODE the grader and its rules must be main's committed versions, in both checkouts."""
    from lab.guard import meta  # here, not at the top: see the note above the imports

    if meta.status(root).on:
        return
    try:
        checkouts = {root: "root checkout", work: "worktree"} if work != root else {root: "checkout"}
        drifted = {where: gitx.drift(path, names.MAIN, taxonomy.patterns_of("FROZEN")) for path, where in checkouts.items()}
    except gitx.GitError as e:
        raise RunFailed("invalid", f"cannot compare frozen files with main: {e}") from None
    named = [f"{p} ({where})" for where, paths in drifted.items() for p in paths]
    if named:
        raise RunFailed("invalid", f"frozen file(s) differ from main's committed versions: {', '.join(named)}; "
                                   "restore them (`git checkout main -- FILE`) or ask the human for META_MODE")


def evaluate(args: Args, row: dict, work: Path, root: Path, out_dir: Path, device: str,
             protected: Protected | None = None) -> tuple[dict, dict]:
    """Run and grade `row`'s run (read, never written): (the outcome columns, the wall-clock marks of its phases).

    A RunFailed or Killed on the way carries in `found` the columns known by then (data_sha, train_wall_s).
    """
    marks = {"evaluate": time.time()}
    found: dict = {}
    try:
        if protected is None:
            check_frozen(root, work)
        try:
            data_dir, manifest = (protected.data_dir, prepare.verify(protected.data_dir)) if protected else prepare.build(args.source)[:2]
        except prepare.DataError as e:
            raise RunFailed("invalid", f"data: {e}") from None
        found["data_sha"] = prepare.data_hash(manifest)[:16]
        marks["data"] = time.time()
        if not protected and not args.smoke and (unclean := jobs.unclean(work)):
            raise RunFailed("invalid", f"uncommitted changes ({', '.join(unclean[:3])}{' …' if len(unclean) > 3 else ''}): "
                                       "commit first; a real eval trains the commit, not the working copy")
        val = prepare.load_split(data_dir, "val")  # before training: nothing train.py does can reach these bytes
        test = prepare.load_split(data_dir, "test") if protected else b""
        seq_len, batch = (SMOKE_SEQ_LEN, SMOKE_BATCH) if args.smoke else (SEQ_LEN, EVAL_BATCH[device.split(":")[0]])
        hard_limit = row["budget_s"] + START_ALLOWANCE_S
        hard_limit = min(hard_limit, args.hard_limit_s) if args.hard_limit_s else hard_limit
        tree = Path(tempfile.mkdtemp(prefix=f"lab-tree-{row['run_id']}-"))
        try:
            try:  # the commit's tree from git objects (--smoke: the working copy), data-size limits first
                sandbox.materialize(work, None if args.smoke else row["commit"] or "HEAD", tree,
                                    base=protected.base if protected else names.MAIN)
            except sandbox.Refused as e:
                raise RunFailed("invalid", f"refused before training: {e}") from None
            if not (tree / "train.py").is_file():
                raise RunFailed("invalid", f"no train.py in {'the working copy' if args.smoke else 'commit ' + row['commit'][:12]}")
            marks["tree"] = time.time()
            try:
                cmd, env = train_command(args, row, tree, data_dir, out_dir, device, seq_len, batch)
            except sandbox.Refused as e:
                raise RunFailed("invalid", f"refused before training: {e}") from None
            logger.info(f"run {row['run_id']}: training {'the working copy' if args.smoke else row['commit'][:12]} "
                        f"(sandbox {row['sandbox']}, budget {row['budget_s']}s, killed past {hard_limit:.0f}s)")
            marks["spawn"] = time.time()
            rc, last_line, wall = run_train(cmd, tree, env, out_dir / "train.log", hard_limit)
            marks["exit"] = time.time()
        finally:
            shutil.rmtree(tree, ignore_errors=True)
        found["train_wall_s"] = round(wall, 1)
        if rc is None:
            raise RunFailed("timeout", f"train.py ran past the hard limit of {hard_limit:.0f}s (budget {row['budget_s']}s + "
                                       f"{START_ALLOWANCE_S:.0f}s allowance, wall time measured by eval); its process tree was killed")
        if rc != 0:
            how = f"signal {signal.Signals(-rc).name}" if rc < 0 else f"exit code {rc}"
            raise RunFailed("crash", f"train.py ended with {how}: {last_line[-300:]}")
        if not os.path.lexists(out_dir / "model.pt2"):
            raise RunFailed("invalid", f"train.py exited 0 but wrote no model.pt2 in {out_dir}")
        from lab.grader import artifact

        try:  # regular files only, each read once: a link left in the output directory is never followed
            model_pt2 = artifact.read(out_dir / "model.pt2")
            info = json.loads(artifact.read(out_dir / "train_info.json"))
        except artifact.RefusedArtifact as e:
            raise RunFailed("invalid", f"train.py's output refused: {e}") from None
        except ValueError as e:
            raise RunFailed("invalid", f"train_info.json is not JSON in {out_dir}: {e}") from None
        reported = info.get("train_s") if isinstance(info, dict) else None
        if not isinstance(reported, (int, float)) or not 0 <= reported <= wall:
            raise RunFailed("invalid", f"train_info.json reports train_s {reported!r}, but train.py ran {wall:.1f}s (measured by eval)")
        if hashlib.sha256(val).hexdigest() != manifest["sha256"]["val"]:
            raise RunFailed("invalid", "the val bytes read before training differ from the manifest's sha256; "
                                       "delete the data cache and run `just prepare`")
        val = val[: SMOKE_VAL_BYTES if args.smoke else VAL_BYTES]
        logger.info(f"grading {out_dir / 'model.pt2'} on {len(val):,} val bytes")
        config = info.get("config_line", "")
        if not isinstance(config, str) or len(config) > CONFIG_CHARS or not config.isprintable():
            raise RunFailed("invalid", f"train_info.json's config_line must be one printable line of at most {CONFIG_CHARS} "
                                       f"characters, got {str(config)[:40]!r}")
        val_bpb, params, seconds = grade(model_pt2, val, seq_len, batch, device)
        marks.update(train=info.get("times"), graded=time.time(), **seconds)
        if protected:
            if hashlib.sha256(test).hexdigest() != manifest["sha256"]["test"]:
                raise RunFailed("invalid", "the test bytes read before training differ from the manifest's sha256")
            protected.test_bpb = grade(model_pt2, test[:TEST_BYTES], seq_len, batch, device, canaries=False)[0]
        return {**found, "val_bpb": round(val_bpb, 6), "params": params, "artifact_sha": hashlib.sha256(model_pt2).hexdigest(),
                "steps": info.get("steps"), "tokens": info.get("tokens"), "train_s": reported,
                "peak_mem_mb": info.get("peak_mem_mb"), "config": config}, marks
    except (RunFailed, Killed) as e:
        e.found = found
        raise


def train_command(args: Args, row: dict, tree: Path, data_dir: Path, out_dir: Path, device: str, seq_len: int,
                  batch: int) -> tuple[list[str], dict[str, str]]:
    """train.py's command line and environment: in the sandbox (train.bin only), or as is with --unsandboxed."""
    boxed = row["sandbox"] != "none"
    src, data, out = (sandbox.SRC, sandbox.DATA, sandbox.OUT) if boxed else (str(tree), str(data_dir), str(out_dir))
    checker = "/grader/typecheck.py" if boxed else str(ROOT / "lab" / "grader" / "typecheck.py")  # eval's copy, not the tree's
    typecheck = os.environ.get("LAB_TYPECHECK") == "1"
    cmd = [sys.executable, *([checker] if typecheck else []), f"{src}/train.py", "--data-dir", data, "--out-dir", out,
           "--budget-s", str(row["budget_s"]), "--seed", str(row["seed"]), "--device", device,
           "--seq-len", str(seq_len), "--export-batch", str(batch)]
    cmd += ["--max-steps", str(args.max_steps)] if args.max_steps else []
    cmd += ["--smoke"] if args.smoke else []
    if not boxed:
        return cmd, {**os.environ, "PYTHONUNBUFFERED": "1"}
    files = {checker: ROOT / "lab" / "grader" / "typecheck.py"} if typecheck else {}
    return sandbox.command(cmd, tree=tree, train_bin=data_dir / "train.bin", out_dir=out_dir, device=device,
                           files=files), sandbox.environment()


def smoke_gate(root: Path, work: Path, eval_sha: str) -> None:
    """An experiment's real eval needs a committed tree that `just smoke` passed on (its content, this eval.py)."""
    where = os.path.relpath(work, root)
    loose = jobs.unclean(work)
    if any("FROZEN" in taxonomy.classes_of(p) for p in loose):
        return  # tampering, not a forgotten commit: evaluate() records it as an `invalid` row
    if loose:
        die(f"{where} has uncommitted paths ({', '.join(loose[:5])}): commit your train.py change first "
            "(logs and outputs belong under .cache/, which git ignores); a real eval grades a commit")
    if jobs.smoke_pass(root, jobs.content_key(work), eval_sha) is None:
        die(f"`just smoke` has not passed on {where}'s HEAD {gitx.head_commit(work)[:12]} under this eval.py: "
            f"run `cd {where} && just smoke` first")


def record_smoke(root: Path, work: Path, row: dict) -> str:
    """Record this smoke's outcome for the checkout's content; say what was recorded, or why nothing was."""
    loose = jobs.unclean(work)
    if not row["commit"]:
        return "no smoke result recorded: the checkout has no commit yet"
    if loose:
        return (f"no smoke result recorded: uncommitted paths ({', '.join(loose[:5])}); commit your change "
                "(logs and outputs belong under .cache/) and smoke again")
    key = jobs.content_key(work)
    jobs.record_smoke(root, key, row["eval_sha"], row["train_sha"], row["commit"], row["wall_s"],
                      "ok" if row["status"] == "ok" else "failed", row.get("reason", ""))
    if row["status"] == "ok":
        return f"smoke pass recorded for {row['commit'][:12]} (content {key}; `just eval` and `lab queue` need it)"
    return f"smoke failure recorded for {row['commit'][:12]}: fix train.py, commit, smoke again"


def summary(row: dict, ledger_note: str, mode: str) -> str:
    keys = ("run_id", "status", "reason", "val_bpb", "train_s", "wall_s", "steps", "tokens", "params", "peak_mem_mb", "device")
    lines = [f"{k + ':':13s}{'' if row.get(k) is None else row[k]}" for k in keys] + [f"{'ledger:':13s}{ledger_note}"]
    return f"---\n{'mode:':13s}{mode}\n" + "\n".join(lines) + "\n"


def protected_eval(cfg: protect.Config, args: Args, row: dict) -> dict:
    """The run graded by the installed grader through sudo: its signed row, or this row as a crash saying why."""
    argv = ["--commit", row["commit"], "--branch", row["branch"], "--run-id", row["run_id"], "--seed", str(row["seed"]),
            "--device", args.device, "--label", row["label"]]
    for flag, value in (("--budget-s", args.budget_s), ("--max-steps", args.max_steps), ("--hard-limit-s", args.hard_limit_s),
                        ("--pueue-task", row["pueue_task"]), ("--predicted-delta", row["predicted_delta"]),
                        ("--visible-gpus", os.environ.get("CUDA_VISIBLE_DEVICES"))):
        argv += [flag, str(value)] if value is not None else []
    try:
        return protect.grade(cfg, argv)
    except protect.ProtectError as e:
        return {**row, "status": "crash", "reason": str(e)}


def locate(workdir: Path) -> tuple[Path, Path, str]:
    """The checkout being evaluated, its root checkout and its branch; not a git checkout is a setup error."""
    try:
        work = gitx.toplevel(workdir)
        return work, gitx.root_checkout(work), gitx.branch(work)
    except gitx.GitError as e:
        die(str(e))


def pin_slot_gpu() -> int:
    """Give a pueue slot its GPU (before torch touches CUDA); the box's GPU count, as nvidia-smi lists them."""
    slot, gpus = os.environ.get("PUEUE_WORKER_ID"), runs.gpu_count()
    if (gpu := jobs.pin_gpu(os.environ, gpus)) is not None:
        logger.info(f"pueue slot {slot}: CUDA_VISIBLE_DEVICES={gpu}")
    elif slot is not None and gpus == 0:
        logger.info(f"pueue slot {slot}: no GPU on this box (nvidia-smi lists none)")
    return gpus


def choose_device(device: str, grader: protect.Config | None, gpus: int) -> str:
    """The run's device. Where the installed grader resolves it, this row is written only if the grader gives none:
    nvidia-smi's view is enough for it, and torch is not imported."""
    if grader is not None:
        return device if device != "auto" else "cuda" if gpus else "cpu"
    return resolve_device(device)


def start_row(args: Args, root: Path, work: Path, device: str) -> dict:
    """The row's identity and provenance columns: run id, commit, hashes, budget, and what the queue recorded."""
    budget = args.budget_s or (SMOKE_BUDGET_S if args.smoke else jobs.default_budget(device))
    run_id = new_run_id()
    try:
        job = jobs.read_job(root, run_id) if os.environ.get("LAB_RUN_ID") else None
    except ValueError as e:
        die(f"the queue's record of run {run_id} is unreadable: {e}")
    return runs.provenance(root, work, run_id, args.seed, budget, args.max_steps, device,
                           label=os.environ.get("LAB_LABEL", ""), task=(job or {}).get("task"),
                           predicted_delta=(job or {}).get("predicted_delta"))


def sandbox_column(args: Args, grader: protect.Config | None, device: str) -> str:
    """How train.py will run (the row's sandbox column), or a setup error: the refusals before any row is promised."""
    if grader is not None and args.unsandboxed:
        die("--unsandboxed: in protected mode the grader always trains in its sandbox")
    if grader is not None and args.source and str(args.source.resolve()) != grader.source:
        die(f"--source {args.source}: the protected grader grades on the data it was installed with ({grader.source or 'its default'})")
    boxed, sandbox_line = (False, "--unsandboxed") if args.unsandboxed else (
        (True, "grader") if grader is not None else sandbox.available())
    if not boxed and not args.unsandboxed and not args.smoke:
        die(f"{sandbox_line}; a real eval trains in that sandbox: fix it, or pass --unsandboxed (the row says sandbox none)")
    if not boxed and not args.unsandboxed:
        logger.warning(f"smoke without a sandbox: {sandbox_line}")
    if boxed and device.startswith("cuda"):  # before a row is promised: a GPU the sandbox cannot bind is a setup error
        try:
            sandbox.gpu_binds(os.environ.get("CUDA_VISIBLE_DEVICES"))
        except sandbox.Refused as e:
            die(str(e))
    return sandbox_line if boxed else "none"


def hold_run(root: Path, work: Path, branch: str, row: dict, results: Path) -> object:
    """A real eval's checks before training (the row fits the ledger, which exists; a smoke passed), then the run's
    lock, held until this process exits; the lock."""
    try:  # fail before training, not after, if the row could not be written
        ledger.format_row({**row, "status": "ok", "val_bpb": 0.0, "wall_s": 0.0})
    except ledger.LedgerError as e:
        die(f"this run's row would break the ledger schema: {e}")
    if not results.is_file():
        die(f"{results} is missing: restore it with `git checkout -- results.tsv` in {root}")
    if branch != names.MAIN:
        smoke_gate(root, work, row["eval_sha"])
    run_id = row["run_id"]
    try:
        lock = jobs.hold_run_lock(root, run_id)
    except ValueError as e:
        die(str(e))
    # only now, under the ledger's lock: a `killed` row the queue wrote before we held ours is seen here,
    # and none can be written after (queue.reconcile skips a run whose lock is held)
    if os.environ.get("LAB_RUN_ID") and run_id in ledger.run_ids(results):
        die(f"run {run_id} already has a row in {results}: a restarted pueue task reuses its run id; "
            "queue the run again with `lab queue` instead of `pueue restart`")
    jobs.write_running(root, row)
    return lock


def run(args: Args, grader: protect.Config | None, row: dict, work: Path, root: Path, out_dir: Path,
        device: str) -> tuple[dict, dict]:
    """Train and grade here, or hand the run to the installed grader: the row with its outcome, and the phase marks."""

    def on_signal(signum: int, _frame: object) -> None:
        raise Killed(f"received {signal.Signals(signum).name}")

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    marks: dict = {}
    try:
        if grader is not None:  # the installed grader trains, grades and signs; its row replaces ours
            shutil.rmtree(out_dir, ignore_errors=True)  # the run's files are the grader's (its state dir)
            return protected_eval(grader, args, row), marks
        outcome, marks = evaluate(args, row, work, root, out_dir, device)
        return {**row, "status": "ok", "reason": "", **outcome}, marks
    except RunFailed as e:
        return {**row, **e.found, "status": e.status, "reason": e.reason}, marks
    except Killed as e:
        return {**row, **e.found, "status": "killed",
                "reason": f"eval.py {e} while running; train.py's process tree was killed"}, marks


def record(args: Args, row: dict, root: Path, work: Path, results: Path, out_dir: Path, marks: dict,
           started: float) -> tuple[bool, str]:
    """Append the run's one row (--smoke: record the smoke instead) and its phase marks; (written, the ledger note)."""
    if args.smoke:
        shutil.rmtree(out_dir, ignore_errors=True)
        return True, "not written (smoke); " + record_smoke(root, work, row)
    written = bool(ledger.append_new([row], results))  # append_new: even a bug elsewhere cannot give this run a second row
    jobs.drop_running(root, row["run_id"])
    if marks:  # where the wall time went (bench/gpu.py reads it); diagnostics, not the metric
        marks.update(process=started - procs.age_s(), main=started, row=time.time())
        phases = out_dir / "phases.json"
        if os.path.lexists(phases):  # train.py's leftover (maybe a link): never written through
            os.unlink(phases)
        files.write_new(phases, (json.dumps(marks, indent=1) + "\n").encode())
    if written:
        return True, f"row appended to {results}"
    return False, f"NOT appended: run {row['run_id']} already has a row in {results}"


def main() -> None:
    logger.remove()
    logger.add(sys.stderr, format="{time:HH:mm:ss} eval  | {message}")
    args = tyro.cli(Args)
    started = time.time()
    gpus = pin_slot_gpu()
    work, root, branch = locate(args.workdir)
    try:
        cfg = protect.config(root)
    except protect.ProtectError as e:
        die(str(e))
    grader = None if args.smoke else cfg  # the installed grader, where it resolves the device, trains and grades
    device = choose_device(args.device, grader, gpus)
    results = ledger.ledger_path(root)
    row = start_row(args, root, work, device)
    row["sandbox"] = sandbox_column(args, grader, device)
    lock = None if args.smoke else hold_run(root, work, branch, row, results)  # noqa: F841 (held while the run is alive)
    out_dir = Path(tempfile.mkdtemp(prefix="lab-smoke-")) if args.smoke else root / ".cache" / "runs" / row["run_id"]
    out_dir.mkdir(parents=True, exist_ok=True)
    row, marks = run(args, grader, row, work, root, out_dir, device)
    blocked = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
    signal.pthread_sigmask(signal.SIG_BLOCK, blocked)  # the row is written whole, whatever arrives now
    if not row.get("signature"):  # a signed row is the grader's, byte for byte
        row["wall_s"] = round(time.time() - started, 1)
    written, note = record(args, row, root, work, results, out_dir, marks, started)
    sys.stdout.write(summary(row, note, protect.mode_line(root)))
    sys.stdout.flush()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)
    if not written:
        sys.exit(2)
    if row["status"] == "killed":
        sys.exit(143)
    sys.exit(0 if row["status"] == "ok" else 1)


if __name__ == "__main__":
    main()
