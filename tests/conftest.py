"""Shared fixtures: a synthetic text corpus and throwaway git checkouts of this workspace.

Every test that needs a workspace gets a real git repository in a temp dir holding copies of the
real eval.py, prepare.py, train.py, justfile and lab/, so nothing here can touch the real ledger.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GIT_ENV = {"GIT_AUTHOR_NAME": "lab-test", "GIT_AUTHOR_EMAIL": "test@lab", "GIT_COMMITTER_NAME": "lab-test",
           "GIT_COMMITTER_EMAIL": "test@lab"}
WORDS = ("def class return self import for in if else while value count data model loss step print "
         "list dict tuple None True False range len with open as try except raise yield lambda").split()


def git(*args: str, cwd: Path) -> str:
    env = {**os.environ, **GIT_ENV}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 small deterministic Python-like files (~1 MB): enough for every split, fast to prepare."""
    root = tmp_path_factory.mktemp("corpus")
    rng = random.Random(0)
    for i in range(300):
        lines = []
        for _ in range(rng.randint(60, 140)):
            indent = "    " * rng.randint(0, 2)
            lines.append(indent + " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 8))))
        path = root / f"pkg{i % 7}" / f"mod_{i}.py"
        path.parent.mkdir(exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
    return root


def workspace_files() -> list[str]:
    """This checkout's files as git sees them (tracked, and untracked but not ignored)."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                         capture_output=True, check=True).stdout.decode()
    return [name for name in out.split("\0") if name and (REPO / name).is_file()]


def make_workspace(dest: Path) -> Path:
    """A committed git checkout of this workspace at `dest`, on branch main, sharing this .venv."""
    dest.mkdir(parents=True)
    for name in workspace_files():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, dest / name)
    (dest / ".venv").symlink_to(REPO / ".venv")
    git("init", "-q", "-b", "main", cwd=dest)
    git("add", "-A", cwd=dest)
    git("commit", "-q", "-m", "workspace", cwd=dest)
    return dest


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return make_workspace(tmp_path / "ws")


def run_env(**extra: str) -> dict[str, str]:
    """Environment for a workspace subprocess: this venv's Python for `just`, no queue variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAB_", "PUEUE_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return {**env, **GIT_ENV, "LAB_PYTHON": sys.executable, **extra}


def tiny_train(workspace: Path, *edits: tuple[str, str]) -> None:
    """Shrink the workspace's train.py defaults so a full (non-smoke) eval costs seconds, then apply edits."""
    path = workspace / "train.py"
    text = path.read_text()
    for old, new in [("n_layer: int = 4", "n_layer: int = 1"), ("d_model: int = 256", "d_model: int = 32"),
                     ("n_head: int = 4", "n_head: int = 2"), ("batch_size: int = 32", "batch_size: int = 4"),
                     *edits]:
        assert old in text, f"train.py no longer contains {old!r}: update the test edit"
        text = text.replace(old, new)
    path.write_text(text)


def path_without_pueue(tmp_path: Path) -> str:
    """A PATH with every command of this one except pueue/pueued (symlinked), whatever this machine has."""
    bin_dir = tmp_path / "bin-without-pueue"
    bin_dir.mkdir()
    for folder in run_env()["PATH"].split(os.pathsep):
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            target = os.path.join(folder, name)
            if not name.startswith("pueue") and not (bin_dir / name).exists() and os.access(target, os.X_OK):
                (bin_dir / name).symlink_to(target)
    return str(bin_dir)
