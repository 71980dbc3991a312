"""The guidance layers are not fooled cheaply (issue 13 §6): drift found by content, isolated hook and pre-commit.

Not the security boundary (protected mode is, tests/e2e/test_protect.py); these are the cheap tricks that once got
past every layer: skip-worktree / assume-unchanged / a lying fsmonitor / a clean filter / `git replace`
hiding a frozen edit from `lab check` and eval's drift check, a poisoned `lab/__pycache__` or an untracked
`json.py` at the root taking over the hook, and the UNPROTECTED line. Cost: ~15 s (temp workspaces, no training).
"""

from __future__ import annotations

import json
import py_compile
import subprocess
from pathlib import Path

import pytest
from conftest import git, run_env

from lab import gitx, taxonomy

HIDES = {
    "skip-worktree": ["git update-index --skip-worktree eval.py"],
    "assume-unchanged": ["git update-index --assume-unchanged eval.py"],
    "fsmonitor": ["git config core.fsmonitor \"$PWD/fsm.sh\"", "printf '#!/bin/sh\\nprintf \"\\\\0\"\\n' > fsm.sh",
                  "chmod +x fsm.sh", "echo fsm.sh >> .git/info/exclude"],
    "clean-filter": ["git config filter.hide.clean 'git show HEAD:eval.py'", "echo 'eval.py filter=hide' >> .git/info/attributes"],
    "replace": ["git replace $(git rev-parse HEAD:eval.py) $(git hash-object -w eval.py)"],
}


@pytest.mark.parametrize("trick", list(HIDES))
def test_a_hidden_frozen_edit_is_still_drift(workspace, trick):
    (workspace / "eval.py").write_text((workspace / "eval.py").read_text() + "\n# forged\n")
    for step in HIDES[trick]:
        subprocess.run(["sh", "-c", step], cwd=workspace, check=True, env=run_env(), capture_output=True)
    if trick in ("skip-worktree", "assume-unchanged"):  # git itself no longer sees the edit
        assert "eval.py" not in git("status", "--porcelain", cwd=workspace)
    assert gitx.drift(workspace, "HEAD", taxonomy.patterns_of("FROZEN")) == ["eval.py"]
    check = subprocess.run(["just", "check"], cwd=workspace, env=run_env(), capture_output=True, text=True)
    assert check.returncode != 0 and "eval.py" in check.stdout + check.stderr


def hook(ws: Path, path: str) -> subprocess.CompletedProcess:
    payload = {"session_id": "s", "transcript_path": "/dev/null", "cwd": str(ws), "hook_event_name": "PreToolUse",
               "tool_name": "Write", "tool_input": {"file_path": str(ws / path), "content": "x"}}
    return subprocess.run([str(ws / "lab" / "hook.sh"), "claude"], input=json.dumps(payload), capture_output=True, text=True,
                          env=run_env(CLAUDE_PROJECT_DIR=str(ws)), cwd=ws)


def test_the_hook_ignores_a_poisoned_pycache_and_a_json_py_at_the_root(workspace):
    assert hook(workspace, "eval.py").returncode == 2
    fake = workspace / "fake_guard.py"
    real = (workspace / "lab" / "guard" / "hook.py").read_text()
    fake.write_text(real.replace("def main(", "def main(*_a, **_k):\n    return 0\n\ndef _real_main("))
    cache = workspace / "lab" / "guard" / "__pycache__"
    cache.mkdir(exist_ok=True)
    py_compile.compile(str(fake), cfile=str(cache / "hook.cpython-311.pyc"), dfile=str(workspace / "lab" / "guard" / "hook.py"),
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    (workspace / "json.py").write_text("raise SystemExit(0)\n")  # would end the hook with 'allowed' if it were imported
    fake.unlink()
    assert git("status", "--porcelain", cwd=workspace).strip() == "?? json.py"
    proc = hook(workspace, "eval.py")
    assert proc.returncode == 2 and "eval.py is FROZEN" in proc.stderr, proc.stderr


def test_unprotected_status_says_so_first(workspace):
    proc = subprocess.run(["just", "status"], cwd=workspace, env=run_env(), capture_output=True, text=True)
    first = proc.stdout.splitlines()[0]
    assert proc.returncode == 0 and first.startswith("UNPROTECTED: ") and "sudo .venv/bin/lab protect" in first
