"""bench/gpu.py without a GPU: it refuses to measure a CPU, its arithmetic, and its whole code path on the CPU.

The arithmetic tests build train.py's CUDA-preset model on the CPU (~2 s). The slow test runs the
script end to end with --cpu on a tiny train.py: two real evals, two jobs through a real pueued
with two slots, two bare train.py runs (~4 min on 2 shared cores; needs pueue, bwrap, like CI).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO, git, run_env, tiny_train

sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO))
import gpu

import train


def test_without_cuda_it_fails_loudly_in_one_line():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the refusal is for machines without it")
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "gpu.py")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip() == ("bench/gpu.py: torch sees no CUDA device here; this benchmark measures a GPU "
                                   "(--cpu runs its code path on the CPU)")


def test_flops_per_token_counts_the_cuda_presets_matmul_weights():
    cfg = train.Config(data_dir=Path("."), out_dir=Path("."), device="cuda")
    assert train.apply_preset(cfg) == "cuda"
    model = train.ByteLM(cfg)
    matmul = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    assert gpu.flops_per_token(cfg.n_layer, cfg.d_model, cfg.seq_len) == 6 * matmul + 12 * cfg.n_layer * cfg.seq_len * cfg.d_model
    assert (cfg.n_layer, cfg.d_model, cfg.n_head) == (12, 768, 12) and 80e6 < sum(p.numel() for p in model.parameters()) < 90e6


def test_throughput_and_mfu_leave_out_the_untimed_compile_steps():
    info = {"steps": 102, "tokens": 102 * 64 * 512, "train_s": 10.0,
            "config": {"untimed_steps": 2, "batch_size": 64, "seq_len": 512, "n_layer": 12, "d_model": 768}}
    assert gpu.throughput(info) == 100 * 64 * 512 / 10.0
    per_token = 6 * (12 * 12 * 768**2 + 256 * 768) + 12 * 12 * 512 * 768
    assert gpu.mfu(info, 989.4e12) == pytest.approx(gpu.throughput(info) * per_token / 989.4e12)
    parts = {"wall": 40.0, "training": 20.0}
    assert gpu.share_at(parts) == pytest.approx(20 / 320)  # 20 s of fixed costs against 300 s of training


def test_the_peak_it_assumes_is_the_gpus_datasheet_figure_or_refused():
    assert gpu.peak_flops("NVIDIA H100 80GB HBM3", None) == 989.4e12
    assert gpu.peak_flops("NVIDIA H100 PCIe", None) == 756e12
    assert gpu.peak_flops("NVIDIA H200", None) == 989.4e12
    assert gpu.peak_flops("NVIDIA A100-SXM4-80GB", None) == 312e12
    assert gpu.peak_flops("Some New GPU", 500.0) == 500e12
    with pytest.raises(SystemExit, match=r"no peak bf16 FLOP/s known for 'Some New GPU': pass --peak-tflops"):
        gpu.peak_flops("Some New GPU", None)


def test_the_breakdown_refuses_train_times_that_are_not_numbers():
    phases = {"process": 0.0, "main": 1.0, "evaluate": 1.5, "data": 2.0, "spawn": 2.5, "exit": 9.0, "canaries": 0.5,
              "grading": 1.0, "graded": 11.0, "row": 11.5, "train": {"started": 3.0, "data": "soon"}}
    with pytest.raises(ValueError, match="train.py's times are missing or not numbers"):
        gpu.breakdown(phases)
    phases["train"] = {"started": 3.0, "data": 3.5, "model": 4.0, "untimed": 5.0, "trained": 7.0, "exported": 8.0}
    parts = gpu.breakdown(phases)
    assert parts["wall"] == 11.5 and parts["training"] == 2.0 and parts["compile"] == 1.0
    assert sum(v for k, v in parts.items() if k != "wall") == pytest.approx(11.5)


@pytest.mark.slow
def test_the_whole_script_runs_on_the_cpu(workspace, corpus):
    for tool in ("pueue", "pueued", "bwrap"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is not on PATH: this test runs the benchmark as a GPU box would (.ci/run installs it)")
    tiny_train(workspace)
    git("commit", "-qam", "tiny", cwd=workspace)
    # the clone's `just prepare` builds the stdlib corpus; the tiny model makes each run seconds
    proc = subprocess.run([sys.executable, "bench/gpu.py", "--cpu", "--budget-s", "1"], cwd=workspace, env=run_env(),
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "baseline: cpu: 1L 32d 2h, 4x512 tokens/step, fp32" in out
    table = out.split("where the wall time went\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert "sandboxed (bwrap" in table[0] and "unsandboxed" in table[0]
    for phase in (*gpu.PHASES, "wall"):
        (line,) = [t for t in table if t.startswith(phase)]
        seconds = [float(s) for s in re.findall(r"(-?\d+\.\d) s", line)]
        assert len(seconds) == 2 and all(s >= -0.2 for s in seconds), line  # marks in order: no phase runs backwards
    assert re.search(r"pueue on one cpu: 1 slot \(one job alone\) [\d,]+ tokens/s; 2 slots \(two jobs at once\) [\d,]+ \+ [\d,]+", out)
    assert "cpu: 2L 64d 2h, 8x512 tokens/step" in out and "(baseline)" in out
