"""The file taxonomy (FROZEN, GLOBAL, APPEND-ONLY, HUMAN-ONLY, REGULAR), read from taxonomy.toml."""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path

DECLARATION = Path(__file__).with_name("taxonomy.toml")


@cache
def paths() -> dict[str, tuple[str, ...]]:
    """Pattern -> classes, in declaration order."""
    data = tomllib.loads(DECLARATION.read_text())
    known = set(data["classes"])
    for pattern, classes in data["paths"].items():
        unknown = set(classes) - known
        if unknown:
            raise ValueError(f"{DECLARATION}: {pattern!r} names unknown class(es) {sorted(unknown)}")
    return {pattern: tuple(classes) for pattern, classes in data["paths"].items()}


def classes_of(path: str) -> tuple[str, ...]:
    """Classes of a repo-relative posix path; an exact entry beats the longest directory prefix."""
    table = paths()
    if path in table:
        return table[path]
    dirs = [p for p in table if p.endswith("/") and path.startswith(p)]
    return table[max(dirs, key=len)] if dirs else ("REGULAR",)


def is_global(path: str) -> bool:
    return "GLOBAL" in classes_of(path)
