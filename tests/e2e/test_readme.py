"""The README's set-up, followed literally: a fresh clone, then its two commands, in its order.

This checkout's HEAD is cloned into a temp dir (on branch main, as a newcomer's clone is), and each
command of the README's "Set-up: two commands" block, parsed out of the clone's README.md, runs there
in bash: change the block to something that does not work and this test fails. The first command
(`uv run just eval`) must leave one new row, baseline seed 0 of slug `main`, status ok, uncommitted
in results.tsv and nothing else changed; the second (`uv run just test`, the fast set) must pass with
that row still uncommitted, and write nothing in the checkout.

Cost: the whole README set-up, for real, ~7 min on a loaded 2-core box: 2-4 min for the first
command (.venv from the uv cache, the data cache, 60 s of training, grading; on a GPU the budget
is 300 s), then the nested fast suite (~3 min). Marked slow, so `just test` never runs
it and the nested run cannot recurse; a guard variable fails it loudly if the README's test command
ever did. Needs uv on PATH and the developer's uv cache (UV_CACHE_DIR as set: no cold cache is
forced; with uv.lock's wheels cached it needs no network). Run: `just test-all tests/e2e/test_readme.py`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import GIT_ENV, REPO, git

from lab import ledger

pytestmark = pytest.mark.slow

NESTED = "LAB_README_TEST_NESTED"  # set for the README's commands: a nested run of this file is a recursion


def setup_commands(readme: str) -> list[str]:
    """The commands of the fenced block under "## Set-up", comments dropped, in their order."""
    block = readme.split("## Set-up", 1)[1].split("```", 2)[1].split("\n", 1)[1]
    return [line.split("#")[0].strip() for line in block.strip().splitlines() if line.split("#")[0].strip()]


def newcomer_env(tmp: Path) -> dict[str, str]:
    """This shell's environment as a newcomer's would be: no lab or pueue variables, not inside this .venv, not CI.

    Not CI: a fresh clone has no .cache/agent-clis, and the outer (CI) suite runs those contract tests itself."""
    venv_bin = str(REPO / ".venv" / "bin")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAB_", "PUEUE_"))
           and k not in ("CI", "VIRTUAL_ENV", "PYTEST_CURRENT_TEST", "PYTEST_ADDOPTS", "UV_PROJECT_ENVIRONMENT")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    env["TMPDIR"] = str(tmp)  # the nested suite's temp dirs stay inside this test's
    return {**env, **GIT_ENV, NESTED: "1"}


def run(command: str, cwd: Path, env: dict[str, str], log: Path, timeout: float) -> subprocess.CompletedProcess:
    with log.open("w") as out:
        proc = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                              text=True, timeout=timeout)
    proc.stdout = log.read_text()
    return proc


def dirty(clone: Path) -> list[str]:
    return git("status", "--porcelain", cwd=clone).splitlines()


@pytest.mark.skipif(not shutil.which("uv"), reason="uv not on PATH: the README's set-up needs it")
def test_the_readmes_two_setup_commands_work_on_a_fresh_clone(tmp_path):
    if os.environ.get(NESTED):
        pytest.fail("the README's test command ran tests/e2e/test_readme.py itself: it would recurse (keep it slow-marked, "
                    "and the README's test command the fast set)")
    head = git("rev-parse", "HEAD", cwd=REPO).strip()
    clone = tmp_path / "lab"
    git("clone", "-q", "--no-checkout", str(REPO), str(clone), cwd=tmp_path)
    git("checkout", "-q", "-B", "main", head, cwd=clone)
    (tmp_path / "tmp").mkdir()
    env = newcomer_env(tmp_path / "tmp")
    commands = setup_commands((clone / "README.md").read_text())
    assert len(commands) == 2, f"README's set-up block should hold two commands, it holds {commands}"
    eval_cmd, test_cmd = commands
    committed_rows, _ = ledger.read(clone / "results.tsv")

    first = run(eval_cmd, clone, env, tmp_path / "first.log", timeout=1800)
    assert first.returncode == 0, f"`{eval_cmd}` failed ({first.returncode}):\n{first.stdout[-4000:]}"
    rows, problems = ledger.read(clone / "results.tsv")
    assert problems == []
    assert len(rows) == len(committed_rows) + 1, f"`{eval_cmd}` should append exactly one row"
    row = rows[-1]
    assert (row["slug"], row["branch"], row["seed"], row["status"], row["dirty"], row["commit"]) == \
        ("main", "main", "0", "ok", "0", head), row
    assert float(row["val_bpb"]) > 0
    assert dirty(clone) == [" M results.tsv"], "the first command's row is left uncommitted, nothing else"

    second = run(test_cmd, clone, env, tmp_path / "second.log", timeout=3600)
    # pytest's closing line (a warning printed at interpreter exit may follow it)
    summary = next((line for line in reversed(second.stdout.splitlines()) if re.search(r"\d+ (passed|failed)", line)), "")
    assert second.returncode == 0, f"`{test_cmd}` failed ({second.returncode}):\n{second.stdout[-6000:]}"
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary
    assert "deselected" in summary, f"`{test_cmd}` should be the fast set (slow tests deselected): {summary}"
    assert dirty(clone) == [" M results.tsv"], "the tests wrote in the checkout"
