"""Benchmark: the baseline and the harness on one GPU, in one command of at most 8 minutes.

Prints side by side, on a throwaway clone of the committed workspace and the real stdlib corpus:
1. `just eval --budget-s B` of main's train.py (its CUDA preset), sandboxed and --unsandboxed:
   tokens/s and MFU (against the peak bf16 FLOP/s it assumes for the GPU, printed), and where the
   wall time went (process start, data, compile, training, export, canaries, grading, row) in
   seconds and as a share of wall, plus the harness's share projected to a 300 s budget.
2. Two pueue slots on the one GPU vs one: `just smoke` (the queue's gate), then two baseline jobs at
   once through `lab baseline`, their summed tokens/s against the single sandboxed run's.
3. While time is left, other model sizes (bare train.py, B seconds each): tokens/s and MFU.
Every compile starts cold (a fresh inductor cache), as it does in the sandbox on every real run.
It fails loudly without CUDA; `--cpu` runs the same code path on the CPU (tests/cli/test_bench_gpu.py).
Run from the root checkout: `uv run python bench/gpu.py [--budget-s 20] [--peak-tflops X]`.
On the device tool's GPU machine (no uv, no pueue there), bench/gpu_carry.sh prepares what to carry.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from lab import ledger  # noqa: E402

CAP_S = 8 * 60
# Dense bf16 tensor-core peaks from the vendors' datasheets (no sparsity), matched against
# torch.cuda.get_device_name(); the first match wins, so the more specific names come first.
PEAK_BF16_TFLOPS = (("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.4), ("H200", 989.4), ("GH200", 989.4),
                    ("B200", 2250.0), ("A100", 312.0), ("L40S", 362.1), ("A10G", 70.0), ("L4", 121.0))
PHASES = ("process start", "data", "compile", "training", "export", "canaries", "grading", "row", "other")
CANDIDATES = ((8, 512, 8, 128), (12, 768, 12, 128), (16, 1024, 16, 64))  # n_layer, d_model, n_head, batch rows
CPU_CANDIDATES = ((1, 32, 2, 4), (2, 64, 2, 8))  # --cpu: the code path, at sizes a CPU steps through


def peak_flops(device_name: str, override_tflops: float | None) -> float:
    """The GPU's peak dense bf16 FLOP/s: --peak-tflops, else PEAK_BF16_TFLOPS; unknown GPUs are refused."""
    if override_tflops:
        return override_tflops * 1e12
    for name, tflops in PEAK_BF16_TFLOPS:
        if name in device_name:
            return tflops * 1e12
    sys.exit(f"bench/gpu.py: no peak bf16 FLOP/s known for {device_name!r}: pass --peak-tflops (the datasheet's dense bf16 figure)")


def flops_per_token(n_layer: int, d_model: int, seq_len: int) -> float:
    """Training FLOPs per token of train.py's ByteLM: 6 x matmul weights + causal attention (PaLM's count, as nanoGPT)."""
    matmul_weights = n_layer * 12 * d_model**2 + 256 * d_model  # qkv 3d², proj d², MLP 8d² per block; the head
    return 6 * matmul_weights + 12 * n_layer * seq_len * d_model


def throughput(info: dict) -> float:
    """Tokens/s of the timed steps (the untimed first ones compile) from a train_info.json."""
    cfg = info["config"]
    timed_tokens = info["tokens"] - min(cfg["untimed_steps"], info["steps"]) * cfg["batch_size"] * cfg["seq_len"]
    return timed_tokens / info["train_s"]


def mfu(info: dict, peak: float) -> float:
    cfg = info["config"]
    return throughput(info) * flops_per_token(cfg["n_layer"], cfg["d_model"], cfg["seq_len"]) / peak


def breakdown(phases: dict) -> dict[str, float]:
    """Seconds of each of PHASES from eval's phases.json (wall-clock marks of eval and of train.py)."""
    t = phases["train"]
    if not isinstance(t, dict) or not all(isinstance(t.get(k), (int, float)) for k in
                                          ("started", "data", "model", "untimed", "trained", "exported")):
        raise ValueError(f"train.py's times are missing or not numbers: {t!r}")
    parts = {
        "process start": (phases["main"] - phases["process"]) + (t["started"] - phases["spawn"]),
        "data": (phases["data"] - phases["evaluate"]) + (t["data"] - t["started"]),
        "compile": t["untimed"] - t["model"],  # the untimed first steps: compilation and allocator warm-up
        "training": t["trained"] - t["untimed"],
        "export": (t["exported"] - t["trained"]) + (phases["exit"] - t["exported"]),
        "canaries": phases["canaries"],  # two fresh loads of the artifact and the canary batches
        "grading": phases["grading"],  # the scoring pass, its hidden probes included
        "row": phases["row"] - phases["graded"],
    }
    wall = phases["row"] - phases["process"]
    parts["other"] = wall - sum(parts.values())  # git, locks, the tree, model build, reading the artifact
    return {**parts, "wall": wall}


def share_at(parts: dict[str, float], budget_s: float = 300.0) -> float:
    """The harness's share of wall at `budget_s` of training: its fixed costs stay, training grows."""
    fixed = parts["wall"] - parts["training"]
    return fixed / (fixed + budget_s)


def run(cmd: list[str], cwd: Path, env: dict[str, str], what: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"bench/gpu.py: {what} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def fresh_env(tmp: Path, **extra: str) -> dict[str, str]:
    """This environment with a cold compile cache of its own (the sandbox gives every run one)."""
    cache = Path(tempfile.mkdtemp(prefix="inductor-", dir=tmp))
    env = {**os.environ, "LAB_PYTHON": sys.executable, "TORCHINDUCTOR_CACHE_DIR": str(cache / "inductor"),
           "TRITON_CACHE_DIR": str(cache / "triton"), **extra}
    env.pop("LAB_RUN_ID", None)
    return env


def evaluated(clone: Path, run_id: str) -> tuple[dict, dict, dict]:
    """(row, train_info, breakdown) of a finished run."""
    rows = {r["run_id"]: r for r in ledger.read(clone / "results.tsv")[0]}
    out = clone / ".cache" / "runs" / run_id
    if rows.get(run_id, {}).get("status") != "ok":
        sys.exit(f"bench/gpu.py: run {run_id} is not ok: {rows.get(run_id, {}).get('reason', 'no row')}")
    return rows[run_id], json.loads((out / "train_info.json").read_text()), breakdown(json.loads((out / "phases.json").read_text()))


def one_eval(clone: Path, tmp: Path, device: str, budget: str, *extra: str) -> tuple[dict, dict, dict]:
    just = str(Path(sys.executable).parent / "just")
    before = set(ledger.run_ids(clone / "results.tsv"))
    run([just, "eval", "--device", device, "--budget-s", budget, "--seed", "0", *extra], clone, fresh_env(tmp), "just eval")
    (run_id,) = set(ledger.run_ids(clone / "results.tsv")) - before
    return evaluated(clone, run_id)


def two_slots(clone: Path, tmp: Path, device: str, budget: str) -> list[tuple[dict, dict, dict]]:
    """Two baseline jobs through a private pueued with two slots on the one GPU."""
    home = Path(tempfile.mkdtemp(prefix="pq-", dir="/tmp"))  # short: the socket path must fit in 108 bytes
    (home / "run").mkdir()
    config = home / "pueue.yml"
    config.write_text(f"shared:\n  pueue_directory: {home}/data\n  runtime_directory: {home}/run\n  use_unix_socket: true\n"
                      f"  unix_socket_path: {home}/run/pueue.socket\nclient:\n  show_confirmation_questions: false\n")
    env = fresh_env(tmp, PUEUE_CONFIG_PATH=str(config))
    daemon = subprocess.Popen(["pueued"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        for _ in range(100):
            if subprocess.run(["pueue", "status"], env=env, capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        lab = [sys.executable, "-m", "lab.cli"]
        before = set(ledger.run_ids(clone / "results.tsv"))
        run([str(Path(sys.executable).parent / "just"), "smoke", "--device", device], clone, env, "just smoke")  # the queue's gate
        run([*lab, "setup", "--slots", "2"], clone, env, "lab setup --slots 2")
        run([*lab, "baseline", "--seeds", "2", "--", "--device", device, "--budget-s", budget], clone, env, "lab baseline")
        run([*lab, "wait"], clone, env, "lab wait")
        return [evaluated(clone, i) for i in sorted(set(ledger.run_ids(clone / "results.tsv")) - before)]
    finally:
        subprocess.run(["pueue", "shutdown"], env=env, capture_output=True, timeout=30)
        daemon.wait(timeout=30)
        shutil.rmtree(home, ignore_errors=True)


def candidate(clone: Path, tmp: Path, device: str, budget: str, size: tuple[int, int, int, int]) -> dict:
    """train.py alone (no sandbox, no grading) at another size; its train_info.json."""
    n_layer, d_model, n_head, batch = size
    out = Path(tempfile.mkdtemp(prefix="cand-", dir=tmp))
    data = next((clone / ".cache" / "data").glob("*/train.bin")).parent
    run([sys.executable, "train.py", "--data-dir", str(data), "--out-dir", str(out), "--device", device, "--budget-s", budget,
         "--n-layer", str(n_layer), "--d-model", str(d_model), "--n-head", str(n_head), "--batch-size", str(batch)],
        clone, fresh_env(tmp), f"train.py at {size}")
    return json.loads((out / "train_info.json").read_text())


def workspace_copy(clone: Path) -> None:
    """The committed workspace on main in `clone`: a git clone, or where the checkout came without .git (a
    device machine's copy of the working tree), its files committed afresh."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@localhost"}
    if (ROOT / ".git").exists():
        run(["git", "clone", "-q", str(ROOT), str(clone)], ROOT, env, "git clone")
        run(["git", "checkout", "-q", "-B", "main"], clone, env, "git checkout")  # eval compares with main
        return
    shutil.copytree(ROOT, clone, symlinks=True, ignore=shutil.ignore_patterns(".cache", ".venv", ".device", "5_worktrees"))
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"], ["git", "commit", "-qm", "workspace copy"]):
        run(cmd, clone, env, " ".join(cmd))


def table(title: str, columns: dict[str, tuple[dict, dict, dict]], peak: float) -> list[str]:
    lines = [title, f"{'':16s}" + "".join(f"{name:>24s}" for name in columns)]
    for phase in (*PHASES, "wall"):
        cells = [f"{p[phase]:7.1f} s {100 * p[phase] / p['wall']:5.1f}%" for _, _, p in columns.values()]
        lines.append(f"{phase:16s}" + "".join(f"{c:>24s}" for c in cells))
    lines.append(f"{'tokens/s':16s}" + "".join(f"{throughput(i):>24,.0f}" for _, i, _ in columns.values()))
    lines.append(f"{'MFU':16s}" + "".join(f"{100 * mfu(i, peak):>23.1f}%" for _, i, _ in columns.values()))
    lines.append(f"{'share at 300 s':16s}" + "".join(f"{100 * share_at(p):>23.1f}%" for _, _, p in columns.values())
                 + "   (fixed costs / (fixed + 300 s); target <= 5%, autoresearch 7.9%)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget-s", default="20", help="training seconds of each run (default 20)")
    parser.add_argument("--peak-tflops", type=float, help="the GPU's dense bf16 peak, when it is not in the table")
    parser.add_argument("--cpu", action="store_true", help="the same code path on the CPU (tests; the figures mean little)")
    args = parser.parse_args()
    started = time.monotonic()
    import torch

    if args.cpu:
        device, name, peak = "cpu", "cpu", (args.peak_tflops or 1.0) * 1e12
    elif not torch.cuda.is_available():
        sys.exit("bench/gpu.py: torch sees no CUDA device here; this benchmark measures a GPU (--cpu runs its code path on the CPU)")
    else:
        device, name = "cuda", torch.cuda.get_device_name(0)
        peak = peak_flops(name, args.peak_tflops)
    for tool in ("bwrap", "pueue", "pueued", "git"):
        if not shutil.which(tool):
            sys.exit(f"bench/gpu.py: `{tool}` is not on PATH (bench/gpu_carry.sh says how to bring it to a GPU machine)")
    print(f"bench/gpu.py: {name}, peak bf16 {peak / 1e12:.1f} TFLOP/s assumed, torch {torch.__version__}, "
          f"{os.cpu_count()} CPU cores, budget {args.budget_s} s a run, cap {CAP_S // 60} min", flush=True)
    with tempfile.TemporaryDirectory(prefix="lab-gpu-") as tmp_name:
        tmp = Path(tmp_name)
        clone = tmp / "ws"
        workspace_copy(clone)
        run([str(Path(sys.executable).parent / "just"), "prepare"], clone, fresh_env(tmp), "just prepare")
        boxed = one_eval(clone, tmp, device, args.budget_s)
        bare = one_eval(clone, tmp, device, args.budget_s, "--unsandboxed")
        row, info, _ = boxed
        print(f"baseline: {info.get('config_line')}; {int(row['params']) / 1e6:.1f}M params, "
              f"{flops_per_token(info['config']['n_layer'], info['config']['d_model'], info['config']['seq_len']) / 1e9:.2f} "
              f"GFLOP/token; val_bpb {row['val_bpb']} sandboxed, {bare[0]['val_bpb']} unsandboxed after {args.budget_s} s")
        print("\n".join(table(f"\n`just eval --budget-s {args.budget_s}`: where the wall time went", {
            f"sandboxed ({row['sandbox']})": boxed, "unsandboxed": bare}, peak)), flush=True)
        pair = two_slots(clone, tmp, device, args.budget_s)
        one, both = throughput(info), sum(throughput(i) for _, i, _ in pair)
        print(f"\npueue on one {device}: 1 slot (one job alone) {one:,.0f} tokens/s; 2 slots (two jobs at once) "
              + " + ".join(f"{throughput(i):,.0f}" for _, i, _ in pair)
              + f" = {both:,.0f} tokens/s ({100 * (both / one - 1):+.1f}%); wall per job "
              + ", ".join(f"{float(r['wall_s']):.0f} s" for r, _, _ in pair) + f" vs {float(row['wall_s']):.0f} s alone")
        per_run = max(float(row["wall_s"]), 1.0)
        print(f"\nother sizes, train.py alone for {args.budget_s} s each (cold compile):")
        print(f"{'n_layer x d_model, heads, batch':34s} {'params':>10s} {'tokens/s':>12s} {'MFU':>7s}")
        print(f"{info['config_line']:34.34s} {int(row['params']) / 1e6:9.1f}M {one:12,.0f} {100 * mfu(info, peak):6.1f}%  (baseline)")
        for size in CPU_CANDIDATES if args.cpu else CANDIDATES:
            if time.monotonic() - started + per_run > CAP_S:
                print(f"{str(size):34s} skipped: another run would pass the {CAP_S // 60}-minute cap")
                continue
            cand = candidate(clone, tmp, device, args.budget_s, size)
            print(f"{cand['config_line']:34.34s} {cand['params'] / 1e6:9.1f}M {throughput(cand):12,.0f} "
                  f"{100 * mfu(cand, peak):6.1f}%", flush=True)
    print(f"\nbench/gpu.py: {time.monotonic() - started:.0f} s in all")


if __name__ == "__main__":
    main()
