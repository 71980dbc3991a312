"""Tests for lab/loop/worktrees.py and `lab start|worktrees|finish` (lab/commands/worktree_cmd.py).

What they test, in real temp workspaces (conftest.make_workspace: real git, real idea files, real results.tsv):
  * start makes 5_worktrees/{slug} on a new branch exp/{slug} from main, also while the root is on another
    branch, and sets the idea running; the CLI says what it did;
  * worktrees lists each one with commits ahead of main, dirty (tracked change or untracked file) and its
    ledger rows, also when called from inside a worktree; it says how to start one when there are none;
  * finish refuses uncommitted work (naming the paths, removing nothing), then removes the worktree, keeps
    the branch and sets the idea done, or dropped with --drop; a missing idea file is a warning, not a stop;
  * every bad input (bad slugs, unknown or un-critiqued idea, existing branch or directory, unknown or dirty
    worktree, a failing `git worktree add`) is a one-line error with a non-zero exit that changes nothing:
    the branches, 5_worktrees/, git's worktree list and the idea files are compared before and after;
  * concurrent starts of one idea make one worktree (start and finish hold a lock on .git);
  * listing 20 worktrees reads the ledger once and spends at most 2 git calls per worktree.

Cost: about 10 s on a 2-core machine (most of it git, and Python start-up for ~10 CLI subprocesses: the 14 refusals
run in-process); fast set; needs `git` (>= 2.31) on PATH, writes only under pytest's tmp_path, needs no GPU and no network.

Run:  just test tests/cli/test_worktrees.py
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import git, lab_in_process, make_workspace, run_env

from lab import ledger
from lab.loop import ideas, worktrees

pytestmark = pytest.mark.filterwarnings("error::lab.loop.worktrees.WorktreeWarning")


# ---------------------------------------------------------------------------------------------- helpers


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return make_workspace(tmp_path / "ws")


def idea(root: Path, slug: str, title: str, critique: bool = True) -> None:
    """An idea file through the real API: proposed, or critiqued when `critique`."""
    ideas.new(root, slug, title)
    if critique:
        ideas.append_critique(root, slug, "Strongest objection: the gain may be noise. Verdict: run.")


def lab(root: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`python -m lab.cli ARGS` in the workspace (or `cwd`), with the workspace's lab/."""
    return subprocess.run([sys.executable, "-m", "lab.cli", *args], cwd=cwd or root,
                          env=run_env(), capture_output=True, text=True)


def status(root: Path, slug: str) -> str:
    return ideas.find(root, slug).status


def state(root: Path) -> tuple:
    """Everything a refused command must leave alone: branches, 5_worktrees/, git's worktrees, idea files."""
    return (git("branch", "--list", cwd=root), sorted(p.name for p in (root / "5_worktrees").iterdir()),
            git("worktree", "list", "--porcelain", cwd=root),
            {p.name: p.read_bytes() for p in sorted((root / "1_ideas").iterdir())})


def add_row(root: Path, slug: str, run_id: str) -> None:
    """One valid (crash) row of `slug` appended to the root results.tsv the way eval.py does it."""
    ledger.append({"run_id": run_id, "time": "2026-01-31T12:00:00Z", "slug": slug, "branch": f"exp/{slug}",
                   "dirty": False, "status": "crash", "reason": "test row", "wall_s": 1.5, "seed": 0,
                   "budget_s": 5.0, "device": "cpu", "host": "test"}, root / ledger.FILENAME)


def commit(tree: Path, name: str, text: str) -> None:
    (tree / name).write_text(text)
    git("add", name, cwd=tree)
    git("commit", "-q", "-m", f"edit {name}", cwd=tree)


# ---------------------------------------------------------------------------------------------- start


def test_start_creates_worktree_from_main_and_sets_running(ws: Path) -> None:
    idea(ws, "wider-mlp", "Wider MLP (4x to 6x)")
    main = git("rev-parse", "main", cwd=ws).strip()
    git("checkout", "-q", "-b", "side", cwd=ws)  # the root on another branch: the worktree still comes from main
    commit(ws, "side.txt", "not on main\n")

    out = lab(ws, "start", "wider-mlp")

    assert out.returncode == 0, out.stderr
    assert "created 5_worktrees/wider-mlp on exp/wider-mlp from main" in out.stdout
    tree = ws / "5_worktrees" / "wider-mlp"
    assert git("rev-parse", "HEAD", cwd=tree).strip() == main
    assert git("branch", "--show-current", cwd=tree).strip() == "exp/wider-mlp"
    assert not (tree / "side.txt").exists()
    assert status(ws, "wider-mlp") == "running"


def test_start_api_returns_the_worktree(ws: Path) -> None:
    idea(ws, "rope-base", "Larger RoPE base")
    add_row(ws, "rope-base", "r1")
    tree = worktrees.start(ws, "rope-base")
    assert tree == worktrees.Worktree("rope-base", ws / "5_worktrees" / "rope-base", "exp/rope-base", 0, False, 1)


def test_concurrent_starts_make_one_worktree(ws: Path) -> None:
    idea(ws, "wider-mlp", "Wider MLP (4x to 6x)")
    cmd = [sys.executable, "-m", "lab.cli", "start", "wider-mlp"]
    procs = [subprocess.Popen(cmd, cwd=ws, env=run_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    results = [(p.wait(), p.stderr.read()) for p in procs]
    assert sorted(rc for rc, _ in results) == [0, 1, 1, 1]
    # The losers were refused before git ran, so none of them rolled back the winner's worktree.
    assert all("already running" in err for rc, err in results if rc)
    assert (ws / "5_worktrees" / "wider-mlp" / "train.py").is_file()
    assert status(ws, "wider-mlp") == "running"


# ---------------------------------------------------------------------------------------------- list


def test_worktrees_lists_ahead_dirty_and_rows(ws: Path) -> None:
    empty = lab(ws, "worktrees")
    assert empty.returncode == 0 and empty.stdout.strip() == "no worktrees (start one with `lab start SLUG`)"
    idea(ws, "wider-mlp", "Wider MLP (4x to 6x)")
    idea(ws, "no-bias", "Remove all biases")
    worktrees.start(ws, "wider-mlp")
    worktrees.start(ws, "no-bias")
    tree = ws / "5_worktrees" / "wider-mlp"
    assert [(t.slug, t.branch, t.ahead, t.dirty, t.rows) for t in worktrees.list_worktrees(ws)] == [
        ("no-bias", "exp/no-bias", 0, False, 0), ("wider-mlp", "exp/wider-mlp", 0, False, 0)]

    add_row(ws, "wider-mlp", "r1")
    add_row(ws, "main", "r2")
    add_row(ws, "no-bias", "r3")
    add_row(ws, "no-bias", "r4")
    commit(tree, "train.py", (tree / "train.py").read_text() + "# wider\n")
    assert worktrees.list_worktrees(ws)[1] == worktrees.Worktree("wider-mlp", tree, "exp/wider-mlp", 1, False, 1)
    assert worktrees.list_worktrees(ws)[0].rows == 2

    (tree / "train.py").write_text((tree / "train.py").read_text() + "# uncommitted\n")
    assert worktrees.list_worktrees(ws)[1].dirty
    git("checkout", "--", "train.py", cwd=tree)
    assert not worktrees.list_worktrees(ws)[1].dirty
    (tree / "notes.txt").write_text("untracked\n")
    assert worktrees.list_worktrees(ws)[1].dirty

    out = lab(ws, "worktrees", cwd=tree)  # from inside a worktree: still the root's view
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["slug", "branch", "ahead", "dirty", "rows", "path"]
    assert lines[1].split() == ["no-bias", "exp/no-bias", "0", "no", "2", "5_worktrees/no-bias"]
    assert lines[2].split() == ["wider-mlp", "exp/wider-mlp", "1", "yes", "1", "5_worktrees/wider-mlp"]


def test_listing_20_worktrees_reads_the_ledger_once_and_2_git_calls_each(ws: Path, monkeypatch) -> None:
    for i in range(20):
        git("worktree", "add", "-q", f"5_worktrees/t{i}", "-b", f"exp/t{i}", "main", cwd=ws)
        add_row(ws, f"t{i}", f"r{i}")
    git("worktree", "add", "-q", str(ws.parent / "elsewhere"), "-b", "other", "main", cwd=ws)  # not listed
    reads, calls = [], []
    real_read, real_git = ledger.read, worktrees.gitx.git
    t0 = time.perf_counter()  # the floor, under this moment's load: the git calls the listing may make
    real_git("worktree", "list", "--porcelain", cwd=ws)
    for i in range(20):
        real_git("rev-list", "--count", "main..HEAD", cwd=ws / "5_worktrees" / f"t{i}")
        real_git("status", "--porcelain", cwd=ws / "5_worktrees" / f"t{i}")
    floor = time.perf_counter() - t0
    monkeypatch.setattr(ledger, "read", lambda path: reads.append(path) or real_read(path))
    monkeypatch.setattr(worktrees.gitx, "git", lambda *a, **k: calls.append(a) or real_git(*a, **k))

    t0 = time.perf_counter()
    trees = worktrees.list_worktrees(ws)
    elapsed = time.perf_counter() - t0

    assert sorted(t.slug for t in trees) == sorted(f"t{i}" for i in range(20))
    assert all(t.rows == 1 and t.ahead == 0 and not t.dirty for t in trees)
    assert len(reads) == 1
    assert len(calls) <= 1 + 2 * 20  # `git worktree list` once, then rev-list and status per worktree
    assert elapsed < 3 * floor + 2, f"listing 20 worktrees took {elapsed:.1f} s, its 41 git calls alone {floor:.1f} s"


# ---------------------------------------------------------------------------------------------- finish


def test_finish_refuses_uncommitted_work_then_removes_keeps_branch_sets_done(ws: Path) -> None:
    idea(ws, "wider-mlp", "Wider MLP (4x to 6x)")
    worktrees.start(ws, "wider-mlp")
    tree = ws / "5_worktrees" / "wider-mlp"
    edited = (tree / "train.py").read_text() + "# wider\n"
    (tree / "train.py").write_text(edited)
    before = state(ws)

    refused = lab(ws, "finish", "wider-mlp")

    assert refused.returncode != 0
    assert len(refused.stderr.strip().splitlines()) == 1 and "train.py" in refused.stderr
    assert "commit it on exp/wider-mlp or remove it" in refused.stderr
    assert state(ws) == before and (tree / "train.py").read_text() == edited
    assert status(ws, "wider-mlp") == "running"

    git("commit", "-q", "-am", "wider", cwd=tree)
    done = lab(ws, "finish", "wider-mlp", cwd=tree)  # from inside the worktree it removes

    assert done.returncode == 0, done.stderr
    assert "removed 5_worktrees/wider-mlp; branch exp/wider-mlp kept (1 commit(s) ahead of main" in done.stdout
    assert not tree.exists()
    assert git("branch", "--list", "exp/wider-mlp", cwd=ws).strip() == "exp/wider-mlp"
    assert str(tree) not in git("worktree", "list", "--porcelain", cwd=ws)
    assert status(ws, "wider-mlp") == "done"


def test_finish_drop_sets_dropped(ws: Path) -> None:
    idea(ws, "no-bias", "Remove all biases")
    worktrees.start(ws, "no-bias")
    out = lab(ws, "finish", "no-bias", "--drop")
    assert out.returncode == 0, out.stderr
    assert not (ws / "5_worktrees" / "no-bias").exists()
    assert status(ws, "no-bias") == "dropped"
    assert git("branch", "--list", "exp/no-bias", cwd=ws).strip() == "exp/no-bias"


def test_finish_without_idea_file_removes_and_warns(ws: Path) -> None:
    idea(ws, "no-bias", "Remove all biases")
    worktrees.start(ws, "no-bias")
    ideas.find(ws, "no-bias").path.unlink()
    with pytest.warns(worktrees.WorktreeWarning, match="no-bias"):
        worktrees.finish(ws, "no-bias")
    assert not (ws / "5_worktrees" / "no-bias").exists()

    idea(ws, "wider-mlp", "Wider MLP (4x to 6x)")
    worktrees.start(ws, "wider-mlp")
    ideas.find(ws, "wider-mlp").path.unlink()
    out = lab(ws, "finish", "wider-mlp")
    assert out.returncode == 0 and out.stderr.startswith("warning: 5_worktrees/wider-mlp removed")


# ---------------------------------------------------------------------------------------------- refusals


def _critiqued(root: Path) -> None:
    idea(root, "wider-mlp", "Wider MLP (4x to 6x)")


def _proposed(root: Path) -> None:
    idea(root, "raw-idea", "An idea nobody critiqued", critique=False)


def _branch_exists(root: Path) -> None:
    _critiqued(root)
    git("branch", "exp/wider-mlp", "main", cwd=root)


def _dir_exists(root: Path) -> None:
    _critiqued(root)
    (root / "5_worktrees" / "wider-mlp").mkdir()
    (root / "5_worktrees" / "wider-mlp" / "keep.txt").write_text("someone's files\n")


def _running(root: Path) -> None:
    _critiqued(root)
    worktrees.start(root, "wider-mlp")


def _finished(root: Path) -> None:
    _running(root)
    worktrees.finish(root, "wider-mlp")


def _dirty(root: Path) -> None:
    _running(root)
    (root / "5_worktrees" / "wider-mlp" / "notes.txt").write_text("untracked\n")


REFUSALS = {
    "slug with spaces": (["start", "wider mlp"], _critiqued, "'wider mlp'"),
    "slug ..": (["start", ".."], _critiqued, "'..'"),
    "slug with /": (["start", "exp/x"], _critiqued, "'exp/x'"),
    "unicode look-alike": (["start", "w\u0456der-mlp"], _critiqued, "U+0456"),
    "unknown slug": (["start", "nope"], _critiqued, "'nope'"),
    "un-critiqued idea": (["start", "raw-idea"], _proposed, "run `lab idea critique raw-idea --with"),
    "idea already running": (["start", "wider-mlp"], _running, "'wider-mlp' is already running"),
    "idea already done": (["start", "wider-mlp"], _finished, "'wider-mlp' is done"),
    "branch exists": (["start", "wider-mlp"], _branch_exists, "branch exp/wider-mlp already exists"),
    "directory exists": (["start", "wider-mlp"], _dir_exists, "5_worktrees/wider-mlp already exists"),
    "finish unknown slug": (["finish", "nope"], _critiqued, "no worktree 5_worktrees/nope"),
    "finish ..": (["finish", ".."], _running, "'..'"),
    "finish a plain directory": (["finish", "wider-mlp"], _dir_exists, "5_worktrees/wider-mlp is not a git worktree"),
    "finish uncommitted work": (["finish", "wider-mlp"], _dirty, "uncommitted work (notes.txt)"),
}


@pytest.mark.parametrize("args, setup, needle", REFUSALS.values(), ids=REFUSALS.keys())
def test_bad_input_is_one_line_nonzero_and_changes_nothing(ws: Path, args, setup, needle) -> None:
    setup(ws)
    before = state(ws)
    out = lab_in_process(*args, cwd=ws)
    assert out.returncode != 0
    assert out.stdout == ""
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert needle in out.stderr
    assert state(ws) == before


def test_failed_git_worktree_add_leaves_nothing_behind(ws: Path) -> None:
    _critiqued(ws)
    hook = ws / ".git" / "hooks" / "post-checkout"  # git creates branch and worktree, then the hook fails
    hook.write_text("#!/bin/sh\necho 'post-checkout says no' >&2\nexit 1\n")
    hook.chmod(0o755)
    before = state(ws)
    with pytest.raises(worktrees.WorktreeError, match="post-checkout says no") as err:
        worktrees.start(ws, "wider-mlp")
    assert "\n" not in str(err.value)
    assert state(ws) == before
    assert status(ws, "wider-mlp") == "critiqued"
