"""Experiment worktrees: one per critiqued idea, at 5_worktrees/{slug} on branch exp/{slug}, made from main.

Every function takes the ROOT checkout (gitx.root_checkout) and raises WorktreeError (gitx.GitError when
git itself breaks), one line naming the slug, path or branch and the fix; a refused call changes nothing.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from lab import gitx, ledger, names, slugs
from lab.loop import ideas

DIR = "5_worktrees"
SHOWN_PATHS = 5  # uncommitted paths named in finish's refusal


class WorktreeError(RuntimeError):
    """A worktree cannot be started, listed or finished; the message says why and what to do."""


class WorktreeWarning(UserWarning):
    """Finish did its job but something around it needs a look (e.g. the idea file is missing)."""


@dataclass(frozen=True)
class Worktree:
    """One experiment worktree as git and the ledger see it."""

    slug: str
    path: Path
    branch: str
    ahead: int  # commits on the branch that main does not have
    dirty: bool  # uncommitted tracked changes or untracked files
    rows: int  # rows of this slug in the root results.tsv


def branch_of(slug: str) -> str:
    return f"{names.EXP}{slug}"


def path_of(root: Path, slug: str) -> Path:
    return Path(root) / DIR / slug


def _one_line(text: str) -> str:
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    """git in `root`, never raising: the callers decide what a failure means."""
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)


def _check_slug(slug: str) -> None:
    try:
        slugs.check(slug)
    except slugs.SlugError as e:
        raise WorktreeError(str(e)) from None


def _branch_exists(root: Path, branch: str) -> bool:
    return _git(root, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}").returncode == 0


def _registered(root: Path) -> dict[Path, dict[str, str]]:
    """Linked worktrees under root/5_worktrees, by resolved path: their porcelain fields (HEAD, branch, …)."""
    parent = (Path(root) / DIR).resolve()
    found = {}
    for block in gitx.git("worktree", "list", "--porcelain", cwd=root).split("\n\n"):
        fields = dict((line.split(" ", 1) + [""])[:2] for line in block.splitlines() if line)
        path = Path(fields.get("worktree", "")).resolve()
        if path.parent == parent:
            found[path] = fields
    return found


def _ledger_rows(root: Path) -> list[dict]:
    """The root ledger's valid rows; bad lines are `lab ledger check`'s to report, not a row count's."""
    path = Path(root) / ledger.FILENAME
    return ledger.read(path)[0] if path.exists() else []


def _uncommitted(path: Path) -> list[str]:
    """`git status --porcelain` paths of a worktree: tracked changes and untracked files."""
    return [line[3:] for line in gitx.git("status", "--porcelain", cwd=path).splitlines() if line]


def _describe(root: Path, path: Path, fields: dict[str, str]) -> Worktree:
    branch = fields.get("branch", "").removeprefix("refs/heads/") or "(detached)"
    # HEAD's hash, not the branch name: also right for a detached worktree.
    ahead = int(gitx.git("rev-list", "--count", f"{names.MAIN}..{fields.get('HEAD', 'HEAD')}", cwd=root))
    dirty = path.is_dir() and bool(_uncommitted(path))
    return Worktree(slug=path.name, path=path, branch=branch, ahead=ahead, dirty=dirty, rows=0)


@contextmanager
def _locked(root: Path):
    """Serialise start and finish: a failed start deletes the branch and directory, so they must be its own."""
    try:
        fd = os.open(root / ".git", os.O_RDONLY)  # flock on git's own directory: no lock file to leave behind
    except OSError:
        raise WorktreeError(f"{root} has no .git: pass the root checkout (gitx.root_checkout)") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _undo_add(root: Path, path: Path, branch: str) -> None:
    """Remove what a failed `git worktree add` may have left: the worktree, its directory, the branch."""
    _git(root, "worktree", "remove", "--force", "--force", str(path))
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)
    if path.resolve() in _registered(root):  # a registration left without its directory; only then prune
        _git(root, "worktree", "prune")
    _git(root, "branch", "-D", branch)


def start(root: Path, slug: str) -> Worktree:
    """Create 5_worktrees/{slug} on a new branch exp/{slug} from main and set the idea `running`."""
    _check_slug(slug)
    root = Path(root)
    with _locked(root):
        return _start(root, slug)


def _start(root: Path, slug: str) -> Worktree:
    try:
        idea = ideas.find(root, slug)
    except ideas.IdeaError as e:
        raise WorktreeError(f"cannot start {slug!r}: {e}") from None
    if idea.status == "proposed":
        raise WorktreeError(f"idea {slug!r} has no critique yet: run `lab idea critique {slug} --with …` first")
    if idea.status == "running":
        raise WorktreeError(f"idea {slug!r} is already running: see `lab worktrees` ({DIR}/{slug}), "
                            f"or `lab finish {slug}` first")
    if idea.status != "critiqued":
        raise WorktreeError(f"idea {slug!r} is {idea.status}: only a critiqued idea starts a worktree "
                            f"(a follow-up is a new idea: `lab idea new SLUG`)")
    branch, path = branch_of(slug), path_of(root, slug)
    if _branch_exists(root, branch):
        raise WorktreeError(f"branch {branch} already exists: see `lab worktrees`, or `lab finish {slug}` first "
                            f"(a finished experiment's branch is kept; a new run of it needs a new slug)")
    if path.exists() or path.is_symlink():
        raise WorktreeError(f"{DIR}/{slug} already exists: see `lab worktrees`, or move it away if it is not "
                            f"a worktree of exp/{slug}")
    if not _branch_exists(root, names.MAIN):
        raise WorktreeError(f"branch {names.MAIN} does not exist in {root}: worktrees are made from {names.MAIN}")
    proc = _git(root, "worktree", "add", f"{DIR}/{slug}", "-b", branch, names.MAIN)
    if proc.returncode != 0:
        _undo_add(root, path, branch)
        raise WorktreeError(f"`git worktree add {DIR}/{slug} -b {branch} {names.MAIN}` failed in {root}, nothing kept: "
                            f"{_one_line(proc.stderr) or proc.returncode}")
    try:
        ideas.set_status(root, slug, "running")
    except Exception as e:  # the worktree without the status would be a half-started experiment
        _undo_add(root, path, branch)
        raise WorktreeError(f"could not set idea {slug!r} to running ({_one_line(str(e))}); "
                            f"worktree and branch {branch} removed again") from None
    return Worktree(slug=slug, path=path, branch=branch, ahead=0, dirty=False, rows=sum(r["slug"] == slug for r in _ledger_rows(root)))


def list_worktrees(root: Path, ledger_rows: list[dict] | None = None) -> list[Worktree]:
    """Every worktree under 5_worktrees/, by slug: branch, commits ahead of main, dirty, ledger rows.

    Pass `ledger_rows` when the caller has read the ledger already (lab status on 100k rows reads it once).
    """
    return with_rows(git_view(root), _ledger_rows(root) if ledger_rows is None else ledger_rows)


def git_view(root: Path) -> list[Worktree]:
    """The worktrees as git alone sees them: their `rows` are 0 until `with_rows` counts them."""
    root = Path(root)
    found = _registered(root)
    with ThreadPoolExecutor(max_workers=8) as pool:  # two git calls per worktree, run side by side
        return list(pool.map(lambda path: _describe(root, path, found[path]), sorted(found)))


def with_rows(trees: list[Worktree], ledger_rows: list[dict]) -> list[Worktree]:
    """`trees` with each one's count of ledger rows."""
    count = Counter(r["slug"] for r in ledger_rows)
    return [replace(t, rows=count[t.slug]) for t in trees]


def finish(root: Path, slug: str, drop: bool = False) -> Worktree:
    """Remove 5_worktrees/{slug} (committed work only), keep branch exp/{slug}, set the idea done or dropped.

    Returns the worktree as it was just before removal. A missing idea file is a WorktreeWarning.
    """
    _check_slug(slug)
    root = Path(root)
    with _locked(root):
        return _finish(root, slug, drop)


def _finish(root: Path, slug: str, drop: bool) -> Worktree:
    path = path_of(root, slug)
    fields = _registered(root).get(path.resolve())
    if fields is None:
        if path.exists():
            raise WorktreeError(f"{DIR}/{slug} is not a git worktree: nothing to finish (move it away by hand "
                                f"if it is yours; `lab worktrees` lists the real ones)")
        raise WorktreeError(f"no worktree {DIR}/{slug}: `lab worktrees` lists the ones to finish")
    if not path.is_dir():
        raise WorktreeError(f"{DIR}/{slug} is registered but its directory is gone: run `git worktree prune` "
                            f"in {root} (branch {branch_of(slug)} stays)")
    pending = _uncommitted(path)
    if pending:
        shown = ", ".join(pending[:SHOWN_PATHS]) + (f" and {len(pending) - SHOWN_PATHS} more"
                                                    if len(pending) > SHOWN_PATHS else "")
        raise WorktreeError(f"{DIR}/{slug} has uncommitted work ({shown}): commit it on "
                            f"{branch_of(slug)} or remove it, then `lab finish {slug}` again")
    try:
        idea = ideas.find(root, slug)
    except ideas.IdeaError as e:
        idea = None
        missing = _one_line(str(e))
    (before,) = with_rows([_describe(root, path, fields)], _ledger_rows(root))
    proc = _git(root, "worktree", "remove", str(path))  # no --force: git re-checks that nothing is lost
    if proc.returncode != 0:
        raise WorktreeError(f"`git worktree remove {DIR}/{slug}` failed in {root}: "
                            f"{_one_line(proc.stderr) or proc.returncode}")
    if idea is None:
        warnings.warn(WorktreeWarning(f"{DIR}/{slug} removed (branch {branch_of(slug)} kept), but its idea "
                                      f"could not be marked {'dropped' if drop else 'done'}: {missing}"), stacklevel=3)
        return before
    status = "dropped" if drop else "done"
    # A report already written (reported) or an earlier drop is later news than "done": keep it.
    if drop or idea.status not in ("done", "reported", "dropped"):
        try:
            ideas.set_status(root, slug, status)
        except Exception as e:
            raise WorktreeError(f"{DIR}/{slug} removed (branch {branch_of(slug)} kept), but idea {slug!r} could "
                                f"not be set to {status}: {_one_line(str(e))}") from None
    return before
