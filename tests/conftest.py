"""Shared fixtures: a synthetic text corpus and throwaway git checkouts of this workspace.

A test that needs a workspace gets a real git repository in a temp dir, on branch main, whose one
commit holds the files of this checkout's HEAD commit (eval.py, prepare.py, train.py, justfile, lab/,
the ledger, ...), never those of the working tree: an uncommitted row in results.tsv (left by
`uv run just eval`) or any other uncommitted edit cannot change what a test sees, and nothing here
can touch the real ledger. A consequence for whoever develops lab: a change to lab/ or eval.py reaches
the workspace subprocesses only once it is committed (amend freely on your branch).
tests/fixtures/pueue/ (~1,400 captured pueue outputs) is left out: tests read it from this checkout.

The files are materialised once per session (`git archive HEAD`) into a template repository; each
workspace is a copy of that template, .git included (~30 ms, where a fresh `git add` and `git commit`
cost ~70 ms). Every workspace has a `.venv` symlink to this checkout's environment, ignored through
its .git/info/exclude as the real .venv directory is through .gitignore.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import io
import os
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# e2e tests reuse the CLI tests' helpers (test_overnight, test_queue_live): importable when run alone too
sys.path.insert(0, str(Path(__file__).resolve().parent / "cli"))
NOT_IN_WORKSPACES = "tests/fixtures/pueue"  # read from REPO by test_pueue.py and test_queue.py
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


@functools.cache
def workspace_template() -> Path:
    """Once per session: HEAD's files (less NOT_IN_WORKSPACES) committed in a fresh repository on main."""
    template = Path(tempfile.mkdtemp(prefix="lab-workspace-template-")) / "ws"
    atexit.register(shutil.rmtree, template.parent, ignore_errors=True)
    archive = subprocess.run(["git", "archive", "--format=tar", "HEAD", "--", ".", f":(exclude){NOT_IN_WORKSPACES}"],
                             cwd=REPO, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:  # symlinks and executable bits as committed
        tar.extractall(template, **({"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}))
    git("init", "-q", "-b", "main", cwd=template)
    git("add", "-A", "--force", cwd=template)  # exactly HEAD's files, whatever a global ignore says
    git("commit", "-q", "-m", "workspace", cwd=template)
    with open(template / ".git" / "info" / "exclude", "a") as exclude:
        exclude.write("/.venv\n")
    (template / ".venv").symlink_to(REPO / ".venv")
    return template


def make_workspace(dest: Path) -> Path:
    """A committed git checkout of this workspace's HEAD at `dest`, on branch main, sharing this .venv."""
    shutil.copytree(workspace_template(), dest, symlinks=True)
    git("update-index", "-q", "--refresh", cwd=dest)  # the copies' inodes and ctimes differ from the index's
    return dest


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return make_workspace(tmp_path / "ws")


def run_env(**extra: str) -> dict[str, str]:
    """Environment for a workspace subprocess: this venv's Python for `just`, no queue variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAB_", "PUEUE_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return {**env, **GIT_ENV, "LAB_PYTHON": sys.executable, **extra}


def lab_in_process(*args: str, cwd: Path, stdin: str | None = None, env: dict[str, str] | None = None,
                   ) -> subprocess.CompletedProcess:
    """`lab ARGS` in this process (typer's CliRunner on lab.cli's app, this checkout's lab/) in `cwd`, for refusal
    tables where a subprocess per case costs a Python start-up; returned as a CompletedProcess for the same asserts."""
    from typer.testing import CliRunner

    from lab.cli import app

    env = env or run_env()
    with contextlib.chdir(cwd):
        result = CliRunner().invoke(app, list(args), input=stdin or "", catch_exceptions=False,
                                    env={**dict.fromkeys(os.environ), **env})  # None: unset, as in a fresh process
    return subprocess.CompletedProcess(["lab", *args], result.exit_code, result.stdout, result.stderr)


def tiny_train(workspace: Path, *edits: tuple[str, str]) -> None:
    """Shrink the workspace's train.py CPU preset so a full (non-smoke) eval costs seconds, then apply edits."""
    path = workspace / "train.py"
    text = path.read_text()
    cpu = '"cpu": dict(n_layer=4, n_head=4, d_model=256, batch_size=32, lr=2e-3, warmup_steps=30)'
    for old, new in [(cpu, '"cpu": dict(n_layer=1, n_head=2, d_model=32, batch_size=4, lr=2e-3, warmup_steps=30)'), *edits]:
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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """tests/e2e/ holds the slow end-to-end tests only: `just test` (-m "not slow") must never run one."""
    fast = [item.nodeid for item in items if "/e2e/" in f"/{item.nodeid}" and not item.get_closest_marker("slow")]
    if fast:
        raise pytest.UsageError(f"{fast[0]} is under tests/e2e/ but not marked slow: mark it, or move it to tests/cli/")

