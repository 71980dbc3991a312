"""prepare.py — FROZEN: builds the corpus every run is trained and graded on.

Guarantees: offline and deterministic. The default source is the running Python's standard-library
`.py` files; `--source DIR` takes any text tree. Each file goes to train/val/test by a hash of its
relative path (so editing a file never moves it between splits), and a manifest records the source,
file counts, bytes and the sha256 of each split. Re-running on a built cache changes nothing: it
verifies the hashes and fails loudly if the cache was altered.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

SPLITS = ("train", "val", "test")
VAL_PERCENT, TEST_PERCENT = 5, 5
FORMAT = 1
CACHE_ROOT = Path(__file__).resolve().parent / ".cache" / "data"
SKIP_DIRS = {"site-packages", "dist-packages", "__pycache__", ".git", ".venv", "node_modules"}


class Cache(NamedTuple):
    dir: Path
    manifest: dict
    built: bool  # False when an existing cache was verified


class DataError(RuntimeError):
    """The corpus or its cache is unusable; the message names the path and the fix."""


def default_source() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def split_of(relpath: str) -> str:
    """train, val or test, from the sha256 of the file's posix relative path."""
    bucket = int.from_bytes(hashlib.sha256(relpath.encode()).digest()[:8], "big") % 100
    return "val" if bucket < VAL_PERCENT else "test" if bucket < VAL_PERCENT + TEST_PERCENT else "train"


def _order_key(relpath: str) -> str:
    # Hash order mixes directories, so any prefix of a split is a fair sample of it.
    return hashlib.sha256(b"order:" + relpath.encode()).hexdigest()


def scan(source: Path, suffixes: tuple[str, ...]) -> tuple[dict[str, list[tuple[str, bytes]]], int]:
    """Text files of `source` by split, each split in hash order, and the number of files skipped as binary."""
    splits: dict[str, list[tuple[str, bytes]]] = {s: [] for s in SPLITS}
    skipped = 0
    for dirpath, dirnames, filenames in os.walk(source):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if suffixes and path.suffix not in suffixes or path.is_symlink() or not path.is_file():
                continue
            data = path.read_bytes()
            if b"\0" in data or not _is_utf8(data):
                skipped += 1
                continue
            rel = path.relative_to(source).as_posix()
            splits[split_of(rel)].append((rel, data))
    for files in splits.values():
        files.sort(key=lambda f: _order_key(f[0]))
    return splits, skipped


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def cache_dir(source: Path, cache_root: Path = CACHE_ROOT) -> Path:
    source = source.resolve()
    return cache_root / f"{source.name or 'root'}-{hashlib.sha256(str(source).encode()).hexdigest()[:10]}"


def data_hash(manifest: dict) -> str:
    """One hash for the data a run saw: the split hashes, independent of where the source lives."""
    return hashlib.sha256(json.dumps(manifest["sha256"], sort_keys=True).encode()).hexdigest()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def verify(directory: Path) -> dict:
    """The manifest of a built cache, after checking every split file against its recorded sha256."""
    manifest_path = directory / "manifest.json"
    if not manifest_path.is_file():
        raise DataError(f"data cache {directory} has no manifest.json: delete {directory} and run `just prepare`")
    manifest = json.loads(manifest_path.read_text())
    for split in SPLITS:
        path = directory / f"{split}.bin"
        if not path.is_file():
            raise DataError(f"data cache {directory} is incomplete: {path.name} is missing; "
                            f"delete {directory} and run `just prepare`")
        actual = _sha256_file(path)
        if actual != manifest["sha256"][split]:
            raise DataError(f"data cache {path} was altered: sha256 {actual[:12]}… but the manifest says "
                            f"{manifest['sha256'][split][:12]}…; delete {directory} and run `just prepare`")
    return manifest


def build(source: Path | None = None, cache_root: Path = CACHE_ROOT, suffixes: tuple[str, ...] | None = None) -> Cache:
    """Build the cache for `source` if missing (atomically, under a lock), else verify it."""
    source = (source or default_source()).resolve()
    if suffixes is None:
        suffixes = (".py",) if source == default_source().resolve() else ()
    if not source.is_dir():
        raise DataError(f"data source {source} is not a directory: pass --source DIR with a text tree")
    target = cache_dir(source, cache_root)
    cache_root.mkdir(parents=True, exist_ok=True)
    with open(cache_root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two evals starting together build once
        if target.exists():
            return Cache(target, verify(target), built=False)
        splits, skipped = scan(source, suffixes)
        empty = [s for s in SPLITS if not splits[s]]
        if empty:
            counts = ", ".join(f"{s} {len(splits[s])}" for s in SPLITS)
            raise DataError(f"data source {source} gives empty split(s) {empty} ({counts} files): "
                            "it needs more text files (a few hundred)")
        tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=cache_root))
        try:
            manifest = {"format": FORMAT, "source": str(source), "suffixes": list(suffixes),
                        "split_rule": f"sha256(relpath) % 100: <{VAL_PERCENT} val, "
                                      f"<{VAL_PERCENT + TEST_PERCENT} test, else train",
                        "skipped_binary": skipped, "files": {}, "bytes": {}, "sha256": {}}
            for split in SPLITS:
                blob = b"".join(data for _, data in splits[split])
                (tmp / f"{split}.bin").write_bytes(blob)
                manifest["files"][split] = len(splits[split])
                manifest["bytes"][split] = len(blob)
                manifest["sha256"][split] = hashlib.sha256(blob).hexdigest()
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
            os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return Cache(target, manifest, built=True)


def load_split(directory: Path, split: str) -> bytes:
    return (directory / f"{split}.bin").read_bytes()


def main() -> None:
    import tyro
    from loguru import logger

    @dataclass
    class Args:
        """Build (or verify) the byte-level corpus cache."""
        source: Path | None = None  # a text tree; default: this Python's standard library (.py files)
        cache_root: Path = CACHE_ROOT  # where split caches live (ignored by git)

    args = tyro.cli(Args)
    try:
        directory, manifest, built = build(args.source, args.cache_root)
    except DataError as e:
        logger.error(str(e))
        sys.exit(1)
    logger.info(f"{'built' if built else 'verified'} {directory}")
    for split in SPLITS:
        logger.info(f"  {split:5s} {manifest['files'][split]:6d} files {manifest['bytes'][split]:>12,d} bytes "
                    f"sha256 {manifest['sha256'][split][:16]}")
    logger.info(f"data_sha {data_hash(manifest)[:16]}")


if __name__ == "__main__":
    main()
