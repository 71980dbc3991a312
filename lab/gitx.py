"""Thin git helpers: find the root checkout (also from a worktree), branch, commit, dirtiness."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path


class GitError(RuntimeError):
    """A git query failed; the message names the command and the directory."""


# Every git call of lab's: replace objects and fsmonitor off (a lying fsmonitor or a `git replace` hid frozen
# drift); content checks (drift) hash the files themselves, so no filter or skip-worktree bit decides either.
SAFE = ("-c", "core.fsmonitor=false", "-c", "core.untrackedCache=false")
SAFE_ENV = {"GIT_NO_REPLACE_OBJECTS": "1"}


def _env() -> dict[str, str]:
    return {**os.environ, **SAFE_ENV}


def git(*args: str, cwd: Path | str) -> str:
    """Run git in `cwd` and return stdout without the trailing newline."""
    proc = subprocess.run(["git", *SAFE, *args], cwd=cwd, capture_output=True, text=True, env=_env())
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


def changed_paths(cwd: Path | str = ".", untracked: bool = False) -> list[str]:
    """Tracked paths that differ from HEAD (staged or not), and untracked files not ignored if `untracked`."""
    out = git("status", "--porcelain=v1", "-z", f"--untracked-files={'all' if untracked else 'no'}", cwd=cwd)
    entries = [e for e in out.split("\0") if e]
    paths, skip = [], False
    for entry in entries:
        if skip:  # the source path of a rename follows its entry
            skip = False
            continue
        paths.append(entry[3:])
        skip = entry[0] in "RC"
    return paths


EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


def blobs(specs: list[str], cwd: Path | str = ".") -> list[bytes | None]:
    """Contents of `REV:path` / `:path` specs in one `git cat-file --batch`; None where missing."""
    if not specs:
        return []
    proc = subprocess.run(["git", *SAFE, "cat-file", "--batch"], cwd=cwd, input="".join(f"{s}\n" for s in specs).encode(),
                          capture_output=True, env=_env())
    if proc.returncode != 0:
        raise GitError(f"`git cat-file --batch` failed in {cwd}: {proc.stderr.decode(errors='replace').strip()}")
    out, pos, result = proc.stdout, 0, []
    for _ in specs:
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        if header[-1] == b"missing" or header[1] != b"blob":
            result.append(None)
            pos = end + 1
            continue
        size = int(header[2])
        result.append(out[end + 1 : end + 1 + size])
        pos = end + 1 + size + 1
    return result


def _names(args: list[str], cwd: Path | str) -> list[str]:
    return [n for n in git("diff", "--name-only", "-z", "--no-renames", *args, cwd=cwd).split("\0") if n]


def staged_changes(cwd: Path | str = ".") -> list[tuple[str, bytes | None, bytes | None]]:
    """(path, HEAD content, index content) for every staged path; None where absent."""
    base = "HEAD" if head_commit(cwd) else EMPTY_TREE
    names = _names(["--cached", base], cwd)
    old = blobs([f"{base}:{n}" for n in names], cwd) if base == "HEAD" else [None] * len(names)
    new = blobs([f":{n}" for n in names], cwd)
    return list(zip(names, old, new, strict=True))


def commit_changes(commit: str, cwd: Path | str = ".") -> list[tuple[str, bytes | None, bytes | None]]:
    """(path, first-parent content, commit content) for every path the commit changed."""
    parents = git("rev-list", "--parents", "-n", "1", commit, cwd=cwd).split()[1:]
    base = parents[0] if parents else EMPTY_TREE
    names = _names([base, commit], cwd)
    old = blobs([f"{base}:{n}" for n in names], cwd) if parents else [None] * len(names)
    return list(zip(names, old, blobs([f"{commit}:{n}" for n in names], cwd), strict=True))


def drift(checkout: Path | str, rev: str, pathspecs: list[str]) -> list[str]:
    """Paths under `pathspecs` whose file on disk differs from `rev`'s blob (by content), or that `rev` lacks."""
    out = git("ls-tree", "-r", "-z", "--full-tree", rev, "--", *pathspecs, cwd=checkout)
    committed = {}
    for record in filter(None, out.split("\0")):
        meta, _, path = record.partition("\t")
        committed[path] = meta.split()[2]
    algo = git("rev-parse", "--show-object-format", cwd=checkout) or "sha1"
    changed = [p for p, oid in committed.items() if _blob_id(Path(checkout) / p, algo) != oid]
    new = git("ls-files", "-z", "--others", "--cached", "--exclude-standard", "--", *pathspecs, cwd=checkout).split("\0")
    return sorted(set(changed) | {p for p in new if p and p not in committed})


def _blob_id(path: Path, algo: str) -> str | None:
    """The object id git would give the file at `path` as it is on disk (no filters); None if absent."""
    try:
        data = os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    return hashlib.new(algo, b"blob %d\0" % len(data) + data).hexdigest()
