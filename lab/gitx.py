"""Thin git helpers: find the root checkout (also from a worktree), branch, commit, dirtiness."""

from __future__ import annotations

import subprocess
from pathlib import Path


class GitError(RuntimeError):
    """A git query failed; the message names the command and the directory."""


def git(*args: str, cwd: Path | str) -> str:
    """Run git in `cwd` and return stdout without the trailing newline."""
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise GitError(f"`git {' '.join(args)}` failed in {cwd}: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout.rstrip("\n")


def root_checkout(cwd: Path | str = ".") -> Path:
    """The main checkout that owns the repository, even when `cwd` is inside a linked worktree."""
    try:
        common = git("rev-parse", "--path-format=absolute", "--git-common-dir", cwd=cwd)
    except GitError as e:
        raise GitError(f"{Path(cwd).resolve()} is not inside a git checkout of the workspace ({e})") from None
    return Path(common).parent


def toplevel(cwd: Path | str = ".") -> Path:
    """The checkout (root or worktree) that contains `cwd`."""
    return Path(git("rev-parse", "--show-toplevel", cwd=cwd))


def branch(cwd: Path | str = ".") -> str:
    """Current branch name (also before the first commit), or 'HEAD' when detached."""
    try:
        return git("symbolic-ref", "--short", "-q", "HEAD", cwd=cwd)
    except GitError:
        return "HEAD"


def head_commit(cwd: Path | str = ".") -> str:
    """Full hash of HEAD, or '' in a repository without commits."""
    try:
        return git("rev-parse", "--verify", "--quiet", "HEAD", cwd=cwd)
    except GitError:
        return ""


def changed_paths(cwd: Path | str = ".") -> list[str]:
    """Tracked paths that differ from HEAD (staged or not); untracked files are ignored."""
    out = git("status", "--porcelain=v1", "-z", "--untracked-files=no", cwd=cwd)
    entries = [e for e in out.split("\0") if e]
    paths, skip = [], False
    for entry in entries:
        if skip:  # the source path of a rename follows its entry
            skip = False
            continue
        paths.append(entry[3:])
        skip = entry[0] in "RC"
    return paths
