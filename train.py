"""train.py — the agent's canvas (REGULAR): a small byte-level causal transformer and its training loop.

eval.py starts this file as a subprocess and grades the model it exports; nothing printed here is
the metric. The contract (0_docs/problem.md): keep `main()`, accept the "set by eval.py" options,
and write OUT_DIR/model.pt2 — a torch.export program mapping int64 bytes (export_batch, seq_len)
to logits (export_batch, seq_len, 256) — plus OUT_DIR/train_info.json. Everything else is yours.
"""

from __future__ import annotations

import json
import math
import resource
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
import tyro
from einops import rearrange
from jaxtyping import Float, Int, UInt8
from loguru import logger
from torch import Tensor


@dataclass
class Config:
    # --- set by eval.py (the contract) ---
    data_dir: Path  # holds train.bin
    out_dir: Path  # receives model.pt2 and train_info.json
    budget_s: float = 60.0  # wall-clock training seconds; the first `untimed_steps` are not counted
    seed: int = 0
    device: str = "cpu"
    seq_len: int = 512  # the exported model must take this many bytes per row
    export_batch: int = 16  # ... and this many rows
    max_steps: int | None = None  # a step budget instead of the time budget (deterministic runs)
    smoke: bool = False  # tiny model and batch: exercises the code path, not the idea
    # --- model and optimisation: None takes the device's preset (PRESETS below) ---
    n_layer: int | None = None
    n_head: int | None = None
    d_model: int | None = None
    batch_size: int | None = None  # rows of seq_len bytes a step
    lr: float | None = None
    warmup_steps: int | None = None
    min_lr_frac: float = 0.1  # cosine decay ends at lr * min_lr_frac
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    untimed_steps: int = 2  # torch.compile and allocator warm-up happen here
    log_every_s: float = 5.0


# A CPU needs a small model to take useful steps in 60 s; a GPU needs a wide, deep one and many tokens a
# step, or it waits on kernel launches (bench/gpu.py measures tokens/s and MFU of candidates like these).
# On CUDA the step also runs in bf16 autocast, compiled, with fused AdamW and flash attention (SDPA).
PRESETS = {
    "cpu": dict(n_layer=4, n_head=4, d_model=256, batch_size=32, lr=2e-3, warmup_steps=30),
    "cuda": dict(n_layer=12, n_head=12, d_model=768, batch_size=64, lr=1e-3, warmup_steps=100),
    "smoke": dict(n_layer=2, n_head=2, d_model=64, batch_size=8, lr=2e-3, warmup_steps=5),
}


def apply_preset(cfg: Config) -> str:
    """Fill the options left at None from the device's preset; returns the preset's name."""
    name = "smoke" if cfg.smoke else "cuda" if cfg.device.startswith("cuda") else "cpu"
    for key, value in PRESETS[name].items():
        if getattr(cfg, key) is None:
            setattr(cfg, key, value)
    return name

class Block(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.n_head = cfg.n_head
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.d_model, 4 * cfg.d_model, bias=False), nn.GELU(), nn.Linear(4 * cfg.d_model, cfg.d_model, bias=False)
        )

    def forward(self, x: Float[Tensor, "b t d"]) -> Float[Tensor, "b t d"]:
        q, k, v = rearrange(self.qkv(self.ln1(x)), "b t (three h e) -> three b h t e", three=3, h=self.n_head)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(rearrange(y, "b h t e -> b t (h e)"))
        return x + self.mlp(self.ln2(x))


class ByteLM(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.tok_emb = nn.Embedding(256, cfg.d_model)
        self.pos_emb = nn.Embedding(cfg.seq_len, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, 256, bias=False)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)

    def forward(self, idx: Int[Tensor, "b t"]) -> Float[Tensor, "b t 256"]:
        pos = torch.arange(idx.shape[1], device=idx.device)
        x = self.tok_emb(idx) + self.pos_emb(pos)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


def get_batch(data: UInt8[Tensor, " n"], cfg: Config, gen: torch.Generator) -> tuple[Int[Tensor, "b t"], Int[Tensor, "b t"]]:
    """Random windows of seq_len + 1 bytes: inputs and next-byte targets."""
    starts = torch.randint(len(data) - cfg.seq_len - 1, (cfg.batch_size,), generator=gen)
    windows = data[starts[:, None] + torch.arange(cfg.seq_len + 1)].long()
    return windows[:, :-1], windows[:, 1:]


def lr_at(cfg: Config, step: int, progress: float) -> float:
    """Linear warm-up, then cosine decay over the budget (time or steps) down to min_lr_frac."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    cosine = 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return cfg.lr * (cfg.min_lr_frac + (1 - cfg.min_lr_frac) * cosine)


def peak_memory_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def train(cfg: Config) -> None:
    times = {"started": time.time()}  # wall clock: eval.py lines these up with its own (bench/gpu.py)
    preset = apply_preset(cfg)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    cuda = cfg.device.startswith("cuda")
    data = torch.frombuffer(bytearray((cfg.data_dir / "train.bin").read_bytes()), dtype=torch.uint8)
    times["data"] = time.time()

    model = ByteLM(cfg).to(cfg.device)
    n_params = sum(p.numel() for p in model.parameters())
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=(0.9, 0.95), fused=cuda,
    )
    step_model = torch.compile(model) if cuda else model
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else nullcontext()
    budget = f"{cfg.max_steps} steps" if cfg.max_steps else f"{cfg.budget_s:.0f}s"
    config_line = (f"{preset}: {cfg.n_layer}L {cfg.d_model}d {cfg.n_head}h, {cfg.batch_size}x{cfg.seq_len} tokens/step"
                   + (", bf16 compiled" if cuda else ", fp32"))
    logger.info(f"{n_params / 1e6:.2f}M params | {config_line} | {cfg.device} | budget {budget}")
    times["model"] = time.time()

    step, tokens, train_s, last_log = 0, 0, 0.0, time.perf_counter()
    while True:
        progress = step / cfg.max_steps if cfg.max_steps else train_s / cfg.budget_s
        if progress >= 1.0:
            break
        for group in opt.param_groups:
            group["lr"] = lr_at(cfg, step, progress)
        t0 = time.perf_counter()
        x, y = get_batch(data, cfg, gen)
        x, y = x.to(cfg.device, non_blocking=True), y.to(cfg.device, non_blocking=True)
        with autocast:
            logits = step_model(x)
        loss = F.cross_entropy(rearrange(logits.float(), "b t v -> (b t) v"), rearrange(y, "b t -> (b t)"))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss_value = loss.item()  # syncs the device, so dt below is real
        if not math.isfinite(loss_value):
            logger.error(f"loss is {loss_value} at step {step}: stopping (fail fast on divergence)")
            sys.exit(3)
        dt = time.perf_counter() - t0
        if step >= cfg.untimed_steps:
            train_s += dt
        step += 1
        if step == cfg.untimed_steps:
            times["untimed"] = time.time()
        tokens += x.numel()
        if time.perf_counter() - last_log >= cfg.log_every_s:
            last_log = time.perf_counter()
            remaining = (cfg.max_steps - step) * dt if cfg.max_steps else cfg.budget_s - train_s
            logger.info(f"step {step:6d} | loss {loss_value:.4f} | {x.numel() / dt / 1e3:7.1f}k tok/s | "
                        f"train {train_s:6.1f}s | eta {max(remaining, 0):5.0f}s")

    times["trained"] = time.time()
    logger.info(f"trained {step} steps, {tokens / 1e6:.1f}M tokens in {train_s:.1f}s; exporting")
    model.eval()
    example = torch.zeros(cfg.export_batch, cfg.seq_len, dtype=torch.long, device=cfg.device)
    with torch.no_grad():
        program = torch.export.export(model, (example,))  # graph + weights only: no code of ours travels
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, cfg.out_dir / "model.pt2")
    times["exported"] = time.time()
    info = {"steps": step, "tokens": tokens, "params": n_params, "train_s": round(train_s, 3),
            "peak_mem_mb": round(peak_memory_mb(cfg.device), 1), "config_line": config_line, "config": asdict(cfg),
            "times": times}
    (cfg.out_dir / "train_info.json").write_text(json.dumps(info, indent=2, default=str) + "\n")


def main() -> None:
    logger.remove()
    logger.add(sys.stderr, format="{time:HH:mm:ss} train | {message}")
    train(tyro.cli(Config))


if __name__ == "__main__":
    main()
