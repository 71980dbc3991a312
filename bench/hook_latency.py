"""Latency of the Claude Code hook (lab/hook.sh) on typical payloads, next to `python -c pass`.

Target: median of the Edit payload within 2x the median of `python -c pass` on the same machine.
Run from the root checkout: `uv run python bench/hook_latency.py [N]` (default N = 40 runs each).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(cmd: list[str], stdin: str = "", env: dict | None = None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 2):
        sys.exit(f"{cmd} failed ({proc.returncode}): {proc.stderr}")
    return elapsed


def payload(tool: str, tool_input: dict) -> str:
    return json.dumps({"session_id": "bench", "transcript_path": "/dev/null", "cwd": str(ROOT), "hook_event_name": "PreToolUse",
                       "tool_name": tool, "tool_input": tool_input})


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    command = json.loads((ROOT / ".claude/settings.json").read_text())["hooks"]["PreToolUse"][0]["hooks"][0]["command"]
    env = {**os.environ, "CLAUDE_PROJECT_DIR": str(ROOT)}
    cases = {
        "python -c pass": ([sys.executable, "-c", "pass"], ""),
        "hook: Edit train.py (allowed)": (["sh", "-c", command], payload("Edit", {"file_path": str(ROOT / "train.py"),
                                          "old_string": "lr=2e-3, warmup", "new_string": "lr=1e-3, warmup"})),
        "hook: Edit eval.py (denied)": (["sh", "-c", command], payload("Edit", {"file_path": str(ROOT / "eval.py"),
                                        "old_string": "SEQ_LEN", "new_string": "X"})),
        "hook: Bash `just smoke` (allowed)": (["sh", "-c", command], payload("Bash", {"command": "cd 5_worktrees/x && just smoke"})),
    }
    medians = {}
    for name, (cmd, stdin) in cases.items():
        timed(cmd, stdin, env)  # warm the file cache
        samples = [timed(cmd, stdin, env) for _ in range(n)]
        medians[name] = statistics.median(samples)
        print(f"{name:38s} median {medians[name] * 1e3:6.1f} ms   p90 {sorted(samples)[int(0.9 * n)] * 1e3:6.1f} ms   (n={n})")
    ratio = medians["hook: Edit train.py (allowed)"] / medians["python -c pass"]
    print(f"Edit hook / python -c pass = {ratio:.2f}x (target <= 2x)")


if __name__ == "__main__":
    main()
